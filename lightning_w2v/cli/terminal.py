"""What a run prints: progress bars only on a terminal, one line at a time in a log, no known noise.

- :func:`interactive`: whether stdout is a terminal. Only then do the Trainers show progress
  bars; in a log file (a cluster job, CI, ``> log.txt``) :class:`LogLines` prints one line
  every ``every_n_steps`` training steps and one per validation instead.
- :func:`quiet_known_warnings`: drops, once, at the entry point, the messages that every run
  prints and that say nothing about it (a Lightning advertisement, a torch deprecation inside
  Lightning, Lightning's note on the frozen encoder that FE keeps in eval mode on purpose...).
- :func:`configure_threads`: torch's intra-op threads default to every core. On a machine
  whose cores are busy with other work they then oversubscribe it and a run can be ten times
  slower, so the threads are the cores left free by the current load (at least one), and
  waiting threads sleep instead of spinning. ``LIGHTNING_W2V_THREADS`` or ``OMP_NUM_THREADS``
  set the number explicitly.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from typing import Any

import pytorch_lightning as pl

THREADS_ENV = "LIGHTNING_W2V_THREADS"
# (module or message pattern) of warnings that every run would print and that do not concern it
HARMLESS_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # torch 2.14 deprecation inside Lightning
    r"Found \d+ module\(s\) in eval mode at the start of training.*",  # FE's frozen encoder, on purpose
    r".*does not have many workers.*",  # the CPU configs read in the main process on purpose
    r"The number of training batches \(\d+\) is smaller than the logging interval.*",
    r"LightningCLI's args parameter is intended.*",
)
HARMLESS_LOG_LINES = ("litlogger", "TPU available", "HPU available")


def interactive() -> bool:
    return sys.stdout.isatty()


class _DropLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in HARMLESS_LOG_LINES)


def quiet_known_warnings() -> None:
    """Filter :data:`HARMLESS_WARNINGS` and Lightning's :data:`HARMLESS_LOG_LINES` (idempotent)."""
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "pytorch_lightning.trainer.connectors.logger_connector.logger_connector"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in logger.filters):
            logger.addFilter(_DropLines())


def free_cores() -> int:
    """Cores this process may use that the last minute's load leaves free (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = math.floor(os.getloadavg()[0] + 0.5)
    except OSError:
        busy = 0
    return max(1, cores - busy)


def configure_threads() -> int:
    """Set torch's intra-op threads (see the module docstring); returns the number."""
    import torch

    explicit = os.environ.get(THREADS_ENV) or os.environ.get("OMP_NUM_THREADS")
    threads = int(explicit) if explicit and explicit.isdigit() else min(torch.get_num_threads(), free_cores())
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def prefer_sleeping_threads() -> None:
    """Waiting OpenMP threads sleep rather than spin; must run before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class LogLines(pl.Callback):
    """One line every ``every_n_steps`` training steps and one per validation, where there are no
    progress bars (output to a file). A no-op when a progress bar is shown."""

    def __init__(self, every_n_steps: int = 50, max_metrics: int = 5) -> None:
        super().__init__()
        self.every_n_steps, self.max_metrics = every_n_steps, max_metrics

    def _active(self, trainer: pl.Trainer) -> bool:
        return trainer.is_global_zero and trainer.progress_bar_callback is None

    def _line(self, trainer: pl.Trainer, prefix: str) -> str:
        values = []
        for key, value in trainer.callback_metrics.items():
            if key.startswith(prefix) and getattr(value, "numel", lambda: 1)() == 1:
                values.append(f"{key} {float(value):.4g}")
        return "  ".join(values[: self.max_metrics])

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if self._active(trainer) and step % self.every_n_steps == 0 and step > 0:
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else "?"
            print(f"step {step}/{total}  {self._line(trainer, 'train/')}", flush=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._active(trainer) and not trainer.sanity_checking:
            print(f"epoch {trainer.current_epoch} (step {trainer.global_step})  {self._line(trainer, 'val/')}",
                  flush=True)
