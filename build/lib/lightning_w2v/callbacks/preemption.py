"""Preemption: SIGTERM or SIGUSR1 saves the state after the current batch and ends the run cleanly."""
from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn


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
