"""The encoder interface: what fine-tuning, the probes, HEAR, PWCCA and the results table talk to.

Every encoder, whatever its kind (the wav2vec 2.0 family's backbone, CREPE, PESTO), is an
:class:`Encoder`: audio at the data's 16 kHz in, a sequence of hidden states per frame out.
It knows

- its frames: how many a clip gives (:meth:`Encoder.num_frames`), their rate, hop and where the
  first one is centred, so that labels and timestamps can be aligned to them;
- its hidden states: how many (``num_hidden_states``) and how wide each is (``hidden_sizes``);
  0 is the lowest representation a probe reads, the last the one a head reads by default;
- its own input rate (``sample_rate``; it resamples the 16 kHz data itself) and whether long
  audio must be cut into windows (``needs_windows``: attention over the whole input);
- its trainable parts: the named submodules a fine-tuning policy may freeze (``parts``),
  e.g. ``cnn`` for the wav2vec 2.0 family's feature encoder;
- its architecture (:meth:`Encoder.architecture`), stored in fine-tuning checkpoints so a
  resumed run is checked against it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..vocabulary import SAMPLE_RATE


@dataclass
class EncoderOutput:
    last_hidden_state: Tensor  # (B, T, E)
    hidden_states: list[Tensor] | None  # [state 0, ..., state L], each (B, T, E_i)
    padding_mask: Tensor | None  # (B, T) True at padding frames
    frontend: Tensor | None = None  # (B, T, C) the feature encoder's output, where the encoder has one (PWCCA)


class Encoder(nn.Module):
    """Base class of every encoder (see the module docstring); subclasses set the attributes below."""

    sample_rate: int = SAMPLE_RATE  # the encoder's own input rate (HEAR gives audio at this rate)
    hop_samples: int  # samples between frames, at ``sample_rate``
    first_frame_centre: float  # where frame 0 is centred, in samples at ``sample_rate``
    min_samples: int = 1  # the shortest input (at ``sample_rate``) that gives one frame
    hidden_sizes: tuple[int, ...]  # the width of each hidden state 0..L
    parts: dict[str, str] = {}  # trainable part name -> submodule path, e.g. {"cnn": "feature_extractor"}
    needs_windows: bool = False  # True: attention over the whole input, so long audio is run in windows
    has_frontend: bool = False  # True: EncoderOutput.frontend holds the feature encoder's output

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_samples

    @property
    def num_hidden_states(self) -> int:
        return len(self.hidden_sizes)

    @property
    def hidden_size(self) -> int:
        """The width of the last hidden state (what a head reads by default)."""
        return self.hidden_sizes[-1]

    def num_frames(self, num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
        """Frames a clip of ``num_samples`` at ``sample_rate`` (the data's 16 kHz) gives."""
        raise NotImplementedError

    def frame_times(self, num_frames: int) -> Tensor:
        """(T,) the centre of each frame in seconds."""
        return (torch.arange(num_frames, dtype=torch.float64) * self.hop_samples + self.first_frame_centre) \
            / self.sample_rate

    def architecture(self) -> dict[str, Any]:
        """What the weights' shapes depend on, as plain data (stored in fine-tuning checkpoints)."""
        raise NotImplementedError

    def part(self, name: str) -> nn.Module:
        """The trainable part ``name`` (``""``: the whole encoder); KeyError if this encoder has none."""
        if name == "":
            return self
        return self.get_submodule(self.parts[name])

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None, output_hidden_states: bool = False,
                sample_rate: int = SAMPLE_RATE) -> EncoderOutput:
        """Audio (B, S) at ``sample_rate`` -> hidden states per frame; ``lengths`` (B,) valid samples."""
        raise NotImplementedError


def padding_mask_from_lengths(lengths: Tensor | None, frames: int) -> Tensor | None:
    """(B,) valid lengths -> (B, T) True at padding; None when there is no padding info."""
    if lengths is None:
        return None
    positions = torch.arange(frames, device=lengths.device)
    return positions[None, :] >= lengths[:, None]
