"""PESTO (Riou et al. 2023, self-supervised pitch estimation) as an :class:`~lightning_w2v.models.encoder.Encoder`.

The parts are pesto-pitch's own modules with their released weights (the source in
:mod:`lightning_w2v.encoders.sources.pesto` loads them); this module runs them as
``pesto.model.PESTO.forward`` does and reads the network's stages as hidden states.

- **Frames.** PESTO's harmonic CQT, one frame every ``hop_samples`` (default 160: 10 ms),
  centred (frame t on sample ``t * hop``); each frame is pitch-estimated on its own.
- **Hidden states.** 0 = the prefiltering convolutions' output (40 channels x 219 CQT bins,
  8760 wide), 1 = the last 1x1 convolution's output (3 x 219 = 657, the input of the final
  Toeplitz layer), 2 = PESTO's pitch activations (384 bins of a third of a semitone, after
  the softmax and the absolute-pitch shift: what ``pesto.predict`` returns, and the default a
  head reads). The widths differ, so a learned weighted sum of layers does not apply.
- **Pitch.** :meth:`PestoEncoder.pitch` reduces the activations as PESTO does (``alwa``), in
  fractional MIDI semitones.
- **Parts.** The CQT is signal processing and never trains; the network has no separate
  feature encoder, so FT2 (CNN frozen) does not apply.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from ..vocabulary import SAMPLE_RATE
from .encoder import Encoder, EncoderOutput, padding_mask_from_lengths


class PestoEncoder(Encoder):
    """``pesto``: a loaded ``pesto.model.PESTO`` (its preprocessor built for 16 kHz); ``reduce``: PESTO's
    ``reduce_activations``; ``name``: the model's name (e.g. ``mir-1k_g7``)."""

    def __init__(self, pesto: nn.Module, reduce: Callable[[Tensor, str], Tensor], name: str) -> None:
        super().__init__()
        self.preprocessor = pesto.preprocessor.requires_grad_(False)  # the harmonic CQT
        self.crop_cqt = pesto.crop_cqt
        self.network = pesto.encoder  # pesto.model.Resnet1d
        self.register_buffer("shift", pesto.shift.detach().clone())  # semitones: absolute pitch
        self.bins_per_semitone = int(pesto.bins_per_semitone)
        self.reduction = pesto.reduction
        self._reduce = reduce
        self.name = name
        self.sample_rate = SAMPLE_RATE
        cqt = self.preprocessor.hcqt_kernels.cqt_kernels[0].conv
        self.hop_samples = int(cqt.stride[0])
        self._kernel, self._padding = int(cqt.kernel_size[0]), int(cqt.padding[0])
        self.first_frame_centre = 0.0
        network = self.network
        bins = network.layernorm.normalized_shape[-1]
        channels = [network.conv1[0].out_channels, network.conv_layers[-3].out_channels]
        self.hidden_sizes = (channels[0] * bins, channels[1] * bins, network.fc.kernel_size[0] - channels[1] * bins + 1)

    @property
    def min_samples(self) -> int:
        """The shortest clip the CQT's reflection padding accepts; shorter clips are zero-padded."""
        return self._padding + 1

    def num_frames(self, num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
        _check_rate(sample_rate)
        return (num_samples + 2 * self._padding - self._kernel) // self.hop_samples + 1

    def architecture(self) -> dict:
        return {"encoder": "pesto", "model": self.name, "hop_samples": self.hop_samples}

    def _network(self, x: Tensor) -> list[Tensor]:
        """(N, 1, bins) cropped log-CQT frames -> [prefiltered (N, 40*bins), last conv (N, 3*bins), logits (N, 384)],
        as ``Resnet1d.forward`` computes them."""
        network = self.network
        x = network.conv1(network.layernorm(x))
        for layer in network.prefilt_layers:
            x = layer(x) + x if network.residual else layer(x)
        prefiltered = network.flatten(x)
        last_conv = network.flatten(network.conv_layers(x))
        return [prefiltered, last_conv, network.final_norm(network.fc(last_conv))]

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, output_hidden_states: bool = False,
                sample_rate: int = SAMPLE_RATE) -> EncoderOutput:
        _check_rate(sample_rate)
        count = self.num_frames(waveforms.shape[-1])
        if waveforms.shape[-1] < self.min_samples:
            waveforms = nn.functional.pad(waveforms, (0, self.min_samples - waveforms.shape[-1]))
        batch = waveforms.shape[0]
        cqt = self.preprocessor(waveforms, sr=SAMPLE_RATE)[:, :count].flatten(0, 1)  # (B*T, 1, freq) in dB
        x = self.crop_cqt(cqt * (math.log(10) / 10.0))  # PESTO's input: the log-energy, cropped
        hidden = [h.reshape(batch, count, -1) for h in self._network(x)]
        hidden[-1] = hidden[-1].roll(-round(float(self.shift) * self.bins_per_semitone), -1)  # absolute pitch
        frame_lengths = None if lengths is None else \
            torch.as_tensor([self.num_frames(int(n)) for n in lengths], device=lengths.device)
        return EncoderOutput(last_hidden_state=hidden[-1], hidden_states=hidden if output_hidden_states else None,
                             padding_mask=padding_mask_from_lengths(frame_lengths, count))

    def pitch(self, waveforms: Tensor) -> Tensor:
        """(B, S) at 16 kHz -> (B, T) pitch in fractional MIDI semitones, PESTO's own reduction."""
        return self._reduce(self(waveforms).last_hidden_state, self.reduction)


def _check_rate(sample_rate: int) -> None:
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"PESTO is set up for 16 kHz audio here, got {sample_rate} Hz")
