"""Callbacks and a checkpoint plugin for runs that stop and resume: exactly, atomically, on signal.

- :class:`RNGStateCallback`: puts every random number generator's state into checkpoints
  (torch CPU and CUDA, numpy, python ``random``, and each ``torch.Generator`` held by the
  LightningModule's submodules, e.g. the backbone's layerdrop generator), one set per DDP
  rank, and puts them back when training resumes. With the step, optimiser, LR schedule,
  Gumbel temperature (a function of the step) and the data module's sampler position,
  which Lightning restores itself, a resumed pre-training run repeats the uninterrupted
  one exactly (``tests/test_resume.py``).
- :class:`AtomicCheckpointIO`: writes a checkpoint to a temporary file beside its target,
  fsyncs it and renames it into place. Lightning's own writer stages the file in the system
  temp folder and *moves* it, which is a copy (not atomic) when that folder is on another
  file system, as it usually is on clusters.
- :class:`PreemptionCheckpoint`: on SIGTERM (the usual preemption signal; Lightning only
  notes it) or SIGUSR1 (SLURM's ``--signal=USR1@90`` warning), saves the state after the
  current training batch to ``<checkpoint dir>/last.ckpt`` and ends the run with exit code
  0. ``--ckpt_path last`` resumes from it.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.callbacks import EarlyStopping as _LightningEarlyStopping
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn

from .files import disk_full_error, is_disk_full
from .files.atomic import atomic_write

log = logging.getLogger(__name__)

__all__ = ["AtomicCheckpointIO", "EarlyStopping", "PreemptionCheckpoint", "RNGStateCallback", "atomic_torch_save"]


# --------------------------------------------------------------------------- RNG states
def module_generators(module: torch.nn.Module) -> Iterator[tuple[str, torch.Generator]]:
    """``(dotted name, generator)`` of every ``torch.Generator`` attribute of every submodule."""
    for prefix, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Generator):
                yield (f"{prefix}.{attr}" if prefix else attr), value


def capture_rng_states(module: torch.nn.Module | None = None) -> dict[str, Any]:
    """This process's RNG states, as types ``torch.load(weights_only=True)`` accepts."""
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


# --------------------------------------------------------------------------- atomic writes
def atomic_torch_save(obj: Any, path: str | os.PathLike, what: str = "checkpoint") -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then ``os.replace`` into place.

    A reader (or a resumed run) sees the old file or the complete new one, never a partial
    one, even if the writer is SIGKILLed. A crash leaves at most a hidden ``.partial`` file,
    which the next save to the same path removes. A full file system raises a one-line
    :class:`~lightning_w2v.errors.DiskError` naming it and its free space; the file that was
    at ``path`` before is untouched.
    """
    path = Path(path)
    try:
        with atomic_write(path) as handle:
            torch.save(obj, handle)
    except Exception as error:
        if is_disk_full(error):
            earlier = sorted((p for p in path.parent.glob("*.ckpt") if p != path), key=lambda p: p.stat().st_mtime)
            kept = path if path.exists() else (earlier[-1] if earlier else None)
            raise disk_full_error(path, what, None if kept is None else f"the last one written, {kept},") from None
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O whose local writes are atomic (see :func:`atomic_torch_save`).

    Use as a Trainer plugin (``trainer.plugins`` in the configs). Remote paths (``s3://``...)
    go through Lightning's writer unchanged.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        from fsspec.implementations.local import LocalFileSystem

        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        local = str(path)
        if local.startswith("file://"):
            local = local[len("file://"):]
        atomic_torch_save(checkpoint, local)


# --------------------------------------------------------------------------- preemption
class PreemptionCheckpoint(Callback):
    """On SIGTERM or SIGUSR1: save the state after the current training batch, exit with 0.

    Lightning 2.6 handles SIGTERM itself only by noting it (``trainer.received_sigterm``)
    and raising :class:`~pytorch_lightning.utilities.exceptions.SIGTERMException` (a
    ``SystemExit`` with code 0) at the end of the batch, without saving anything; without
    SLURM auto-requeue it does not handle SIGUSR1 at all (the default action kills the
    process). This callback adds a handler for the ``signals`` besides SIGTERM (chained to
    any handler already there, e.g. Lightning's SLURM requeue handler). At the end of the
    training batch in which a signal arrived it writes ``<dirpath>/<filename>.ckpt``
    atomically (the same state ModelCheckpoint saves at that point), lets Lightning log the
    step's metrics, and stops with ``SIGTERMException`` before anything else runs (next
    batch or validation). Under DDP the ranks agree on stopping with one all-reduce per
    batch, so all of them save and stop after the same batch.

    A signal that ends the run outside a training batch (e.g. during validation: Lightning
    then raises ``SIGTERMException`` itself) is saved from ``on_exception`` in a single
    process; under DDP the last periodic checkpoint is then the resume point.

    Args:
        dirpath: where to save; default the first ModelCheckpoint's folder, else
            ``<default_root_dir>/checkpoints``.
        filename: without ``.ckpt``. The default ``last`` makes ``--ckpt_path last`` resume
            from it (Lightning picks the newest ``last*.ckpt``).
        signals: names of the signals to stop on besides SIGTERM (absent ones are ignored).
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last",
                 signals: tuple[str, ...] | list[str] = ("SIGUSR1",)) -> None:
        super().__init__()
        if not filename:
            raise ValueError("filename must not be empty")
        self.dirpath = dirpath
        self.filename = filename
        self.signals = tuple(signals)
        self.saved_path: str | None = None
        self._received: int | None = None
        self._installed: dict[int, Any] = {}
        self._saved_step: int | None = None
        self._stop_pending = False

    # -- signals -------------------------------------------------------------------------
    def _handler(self, signum: int, frame: Any) -> None:
        self._received = signum
        previous = self._installed.get(signum)
        if callable(previous):
            previous(signum, frame)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning registers its SIGTERM (and SLURM requeue) handlers just before training,
        # after `setup`: installing here keeps them, chained behind ours.
        self._received, self._saved_step, self._stop_pending = None, None, False
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.signals:
            signum = getattr(signal, name, None)
            if signum is None or signum == signal.SIGTERM or signum in self._installed:
                continue
            self._installed[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handler)

    def _uninstall(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._installed.items():
            if signal.getsignal(signum) == self._handler:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._installed = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._uninstall()

    # -- saving --------------------------------------------------------------------------
    def checkpoint_path(self, trainer: pl.Trainer) -> str:
        dirpath = self.dirpath
        if dirpath is None:
            callback = trainer.checkpoint_callback
            if isinstance(callback, ModelCheckpoint) and callback.dirpath:
                dirpath = callback.dirpath
            else:
                dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
        return os.path.join(str(dirpath), f"{self.filename}.ckpt")

    def _signal_seen(self, trainer: pl.Trainer) -> int | None:
        if self._received is not None:
            return self._received
        return signal.SIGTERM if trainer.received_sigterm else None

    def _save(self, trainer: pl.Trainer, signum: int | None) -> None:
        path = self.checkpoint_path(trainer)
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.preempted.partial")
        trainer.save_checkpoint(tmp)  # every rank: dump is collective; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, path)  # atomic whatever the trainer's checkpoint I/O is
        trainer.strategy.barrier("PreemptionCheckpoint")
        self._saved_step = trainer.global_step
        self.saved_path = path
        name = signal.Signals(signum).name if signum is not None else "a stop signal"
        rank_zero_info(f"{name} received: saved the state after step {trainer.global_step} to {path}; "
                       "resume with --ckpt_path last (or that path)")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self._stop_pending:
            return
        signum = self._signal_seen(trainer)
        stop = signum is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        self._save(trainer, signum)
        # Stop at the next hook: Lightning logs this step's metrics after on_train_batch_end.
        self._stop_pending = True

    def _stop_if_pending(self) -> None:
        if self._stop_pending:
            self._uninstall()
            raise SIGTERMException()  # SystemExit(None): Lightning's own clean stop, exit code 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._stop_if_pending()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._stop_if_pending()  # no validation in the grace period

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._uninstall()
        self._stop_pending = False
        if not isinstance(exception, SIGTERMException) or self._saved_step == trainer.global_step:
            return
        if trainer.world_size > 1 or trainer.state.fn != TrainerFn.FITTING or trainer.global_step == 0:
            rank_zero_warn("stopped by a signal outside a training batch: no preemption checkpoint "
                           "written; resume from the last periodic checkpoint")
            return
        self._save(trainer, self._signal_seen(trainer))


# --------------------------------------------------------------------------- early stopping
class EarlyStopping(_LightningEarlyStopping):
    """Lightning's EarlyStopping, for runs that may end before their first validation.

    Lightning's callback (``strict=True``) fails such a run, e.g. ``--trainer.max_steps 2`` under
    an epoch-based validation, because the monitored ``val/loss`` does not exist yet. This one
    skips the check until a validation has run (as ModelCheckpoint does), and stays strict after
    that, so a misspelt ``monitor`` is still an error.
    """

    def _validate_condition_metric(self, logs: dict[str, torch.Tensor]) -> bool:
        if self.monitor not in logs and not self._validation_has_run():
            return False
        return super()._validate_condition_metric(logs)

    def _validation_has_run(self) -> bool:
        trainer = getattr(self, "_trainer_ref", None)
        return bool(trainer is not None and trainer.fit_loop.epoch_loop.val_loop._has_run)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trainer_ref = trainer
