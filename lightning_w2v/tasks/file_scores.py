"""Clip-level tasks on slices: the outputs of a file's slices are averaged, and files are scored.

Clips longer than the task's slice are cut into slices (the data modules do it); a slice is a
training example, but validation and test score whole files, as MARBLE does: the outputs
(logits) of a file's slices are averaged and the metrics see one prediction per file. Under
DDP every rank's slices are gathered first, so a file whose slices sit on several ranks is
averaged whole.
"""
from __future__ import annotations

import torch
from torch import Tensor


class FileAverager:
    """Collects ``(file ids, outputs, targets)`` of slices, then averages the outputs per file."""

    def __init__(self) -> None:
        self.parts: list[tuple[Tensor, Tensor, Tensor]] = []

    def add(self, files: Tensor, outputs: Tensor, targets: Tensor) -> None:
        """(B,) file ids, (B, K) outputs and (B, ...) targets of a batch of slices."""
        self.parts.append((files.detach().cpu(), outputs.detach().float().cpu(), targets.detach().cpu()))

    def reset(self) -> None:
        self.parts = []

    def averaged(self) -> tuple[Tensor, Tensor] | None:
        """(F, K) mean outputs and (F, ...) targets, one row per file in file-id order; None when empty."""
        parts = self.parts
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, parts)
            parts = [part for rank in gathered for part in rank]
        if not parts:
            return None
        files = torch.cat([p[0] for p in parts])
        outputs = torch.cat([p[1] for p in parts])
        targets = torch.cat([p[2] for p in parts])
        order, inverse = torch.unique(files, return_inverse=True)
        sums = torch.zeros(len(order), outputs.shape[1]).index_add_(0, inverse, outputs)
        counts = torch.zeros(len(order)).index_add_(0, inverse, torch.ones(len(files)))
        first = torch.full((len(order),), len(files), dtype=torch.long).scatter_reduce_(
            0, inverse, torch.arange(len(files)), reduce="amin")
        return sums / counts[:, None], targets[first]
