"""Task-specific metrics (torchmetrics), each checked against an independent computation in the tests."""
from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class ChromaAccuracy(Metric):
    """Share of clips whose predicted pitch class (the note name, octave ignored) is right.

    ``first_midi``: the MIDI number of class 0 (NSynth pitch in the paper's range: 9), so class c
    is MIDI ``c + first_midi`` and its chroma ``(c + first_midi) % 12``. HEAR reports it beside
    pitch accuracy.
    """

    full_state_update = False

    def __init__(self, first_midi: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.first_midi = first_midi
        self.add_state("hits", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, outputs: Tensor, labels: Tensor) -> None:
        """outputs (B, classes) scores, labels (B,) classes."""
        predicted = (outputs.argmax(dim=-1) + self.first_midi) % 12
        self.hits += (predicted == (labels + self.first_midi) % 12).sum()
        self.total += labels.numel()

    def compute(self) -> Tensor:
        return self.hits.float() / self.total.clamp_min(1)
