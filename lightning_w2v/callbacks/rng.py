"""Exact resume: every random number generator's state travels with the checkpoint.

:class:`RNGStateCallback` puts every random number generator's state into checkpoints
(torch CPU and CUDA, numpy, python ``random``, and each ``torch.Generator`` held by the
LightningModule's submodules, e.g. the backbone's layerdrop generator), one set per DDP
rank, and puts them back when training resumes. With the step, optimiser, LR schedule,
Gumbel temperature (a function of the step) and the data module's sampler position,
which Lightning restores itself, a resumed pre-training run repeats the uninterrupted
one exactly (``tests/test_resume.py``).
"""
from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.rank_zero import rank_zero_warn


def module_generators(module: torch.nn.Module) -> Iterator[tuple[str, torch.Generator]]:
    """``(dotted name, generator)`` of every ``torch.Generator`` attribute of every submodule."""
    for prefix, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Generator):
                yield (f"{prefix}.{attr}" if prefix else attr), value


def capture_rng_states(module: torch.nn.Module | None = None) -> dict[str, Any]:
    """This process's RNG states, as types that torch's weights-only loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
        "generators": {},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # the current device (one per DDP rank)
    if module is not None:
        state["generators"] = {name: g.get_state() for name, g in module_generators(module)}
    return state


def restore_rng_states(state: dict[str, Any], module: torch.nn.Module | None = None) -> None:
    """Inverse of :func:`capture_rng_states`."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    if module is not None:
        generators = dict(module_generators(module))
        for name, value in state.get("generators", {}).items():
            if name in generators:
                generators[name].set_state(value.cpu())
            else:
                rank_zero_warn(f"RNGStateCallback: the checkpoint has a state for generator {name!r}, "
                               "which the model no longer has; ignored")


class RNGStateCallback(Callback):
    """Saves all RNG states in every checkpoint and restores them when training resumes.

    Stored under ``checkpoint["rng_states"]`` as one entry per DDP rank (gathered from all
    ranks when a checkpoint is written). They are put back in ``on_train_start``, i.e. after
    Lightning has built the data loaders, right before the first resumed batch. A run
    resumed with a different number of ranks keeps its fresh seeds (with a warning).
    """

    CHECKPOINT_KEY = "rng_states"

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        state = capture_rng_states(pl_module)
        world = trainer.world_size
        if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            states: list[Any] = [None] * world
            torch.distributed.all_gather_object(states, state)  # every rank writes through here
        else:
            states = [state]
        checkpoint[self.CHECKPOINT_KEY] = {"world_size": len(states), "ranks": states}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(self.CHECKPOINT_KEY)
        if not saved:
            rank_zero_warn("the checkpoint holds no RNG states (written without RNGStateCallback): "
                           "the resumed run draws different masks, negatives and dropout")
            return
        ranks = saved["ranks"]
        if len(ranks) != trainer.world_size:
            rank_zero_warn(f"the checkpoint's RNG states are from {len(ranks)} rank(s), this run has "
                           f"{trainer.world_size}: RNG states are not restored")
            return
        self._pending = ranks[trainer.global_rank]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:
            restore_rng_states(self._pending, pl_module)
            self._pending = None
