"""Log-mel frames as an :class:`~lightning_w2v.models.encoder.Encoder`: the baseline a learned representation
must beat, read by the same heads as every other encoder.

128 mel bands (torchaudio's ``MelSpectrogram``: 1024-point FFT, a 400-sample window, centred
frames) every ``hop_samples`` (default 320: wav2vec 2.0's 20 ms), ``log(power + 1e-6)``. One
hidden state, 128 wide; nothing to train (FE only: FT1 trains no encoder weight, FT2 is
refused). Frame t is centred on sample ``t * hop``.
"""
from __future__ import annotations

import torch
import torchaudio
from torch import Tensor

from ..vocabulary import SAMPLE_RATE
from .encoder import Encoder, EncoderOutput, padding_mask_from_lengths

N_MELS, N_FFT, WINDOW = 128, 1024, 400


class LogMelEncoder(Encoder):
    def __init__(self, hop_samples: int = 320) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=N_FFT, win_length=WINDOW,
                                                        hop_length=hop_samples, n_mels=N_MELS, center=True)
        self.sample_rate = SAMPLE_RATE
        self.hop_samples = int(hop_samples)
        self.first_frame_centre = 0.0
        self.hidden_sizes = (N_MELS,)

    def num_frames(self, num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
        _check_rate(sample_rate)
        return 1 + num_samples // self.hop_samples

    def architecture(self) -> dict:
        return {"encoder": "logmel", "n_mels": N_MELS, "hop_samples": self.hop_samples}

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, output_hidden_states: bool = False,
                sample_rate: int = SAMPLE_RATE) -> EncoderOutput:
        _check_rate(sample_rate)
        with torch.autocast(waveforms.device.type, enabled=False):  # the FFT in float32
            frames = torch.log(self.mel(waveforms.float()) + 1e-6).transpose(1, 2)  # (B, T, 128)
        frame_lengths = None if lengths is None else 1 + lengths // self.hop_samples
        return EncoderOutput(last_hidden_state=frames, hidden_states=[frames] if output_hidden_states else None,
                             padding_mask=padding_mask_from_lengths(frame_lengths, frames.shape[1]))


def _check_rate(sample_rate: int) -> None:
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"the log-mel frames are computed from 16 kHz audio, got {sample_rate} Hz")
