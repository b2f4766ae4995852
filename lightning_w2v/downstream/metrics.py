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


class KeyWeightedScore(Metric):
    """MIREX's weighted key score, by ``mir_eval.key.weighted_score``: 1 for the right key, 0.5 a fifth
    away, 0.3 the relative key, 0.2 the parallel one, 0 otherwise; the mean over clips.

    ``key_names``: the class names, as mir_eval writes keys (``"C major"``, ``"A minor"``).
    """

    full_state_update = False

    def __init__(self, key_names: tuple[str, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.key_names = key_names
        self.add_state("score", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, outputs: Tensor, labels: Tensor) -> None:
        import mir_eval

        for predicted, reference in zip(outputs.argmax(dim=-1).tolist(), labels.tolist()):
            self.score += mir_eval.key.weighted_score(self.key_names[reference], self.key_names[predicted])
        self.total += labels.numel()

    def compute(self) -> Tensor:
        return (self.score / self.total.clamp_min(1)).float()
