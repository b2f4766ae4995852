"""What a run prints: progress bars only on a terminal, one line at a time in a log, no known noise.

- :func:`interactive`: whether stdout is a terminal. Only then do the Trainers show progress
  bars; in a log file (a cluster job, CI, ``> log.txt``) :class:`LogLines` prints about ten
  training lines per run, and validation lines as often at most, instead.
- :func:`quiet_known_warnings`: drops, once, at the entry point, the messages that every run
  prints and that say nothing about it (a Lightning advertisement, a torch deprecation inside
  Lightning, Lightning's note on the frozen encoder that FE keeps in eval mode on purpose...).
- :func:`configure_threads`: torch's intra-op threads default to every core. On a machine
  whose cores are busy with other work they then oversubscribe it and a run can be ten times
  slower, so the threads are the cores that other processes leave free (measured over a
  quarter of a second, at least one), and waiting threads sleep instead of spinning.
  ``LIGHTNING_W2V_THREADS`` or ``OMP_NUM_THREADS`` set the number explicitly.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
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


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from the first line of /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores_of_others(window_s: float = 0.25) -> float:
    """Cores that other processes keep busy, measured over ``window_s`` seconds.

    Not the load average: that one remembers this process's own last minute (a previous stage
    of the same demo, the test session itself) and would count it as somebody else's load.
    Falls back to the 1-minute load average where /proc/stat does not exist.
    """
    try:
        busy0, total0 = _cpu_jiffies()
        own0 = sum(os.times()[:2])
        time.sleep(window_s)
        busy1, total1 = _cpu_jiffies()
        own1 = sum(os.times()[:2])
    except OSError:
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    cpus = os.cpu_count() or 1
    wall_jiffies = (total1 - total0) / cpus  # jiffies of one CPU in the window
    if wall_jiffies <= 0:
        return 0.0
    own_jiffies = (own1 - own0) * os.sysconf("SC_CLK_TCK")
    return max(0.0, (busy1 - busy0 - own_jiffies) / wall_jiffies)


def free_cores() -> int:
    """Cores this process may use that other processes leave free (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - math.floor(busy_cores_of_others() + 0.5))


_DEFAULT_THREADS: int | None = None  # torch's own default (all cores), before we changed it


def configure_threads() -> int:
    """Set torch's intra-op threads (see the module docstring); returns the number.

    Measured afresh on every call against torch's default, so a process that ran one stage on
    a busy machine gets its threads back for the next stage once the machine is free."""
    import torch

    global _DEFAULT_THREADS
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    explicit = os.environ.get(THREADS_ENV) or os.environ.get("OMP_NUM_THREADS")
    threads = int(explicit) if explicit and explicit.isdigit() else min(_DEFAULT_THREADS, free_cores())
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def prefer_sleeping_threads() -> None:
    """Waiting OpenMP threads sleep rather than spin; must run before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class LogLines(pl.Callback):
    """Where there are no progress bars (output to a file): about ``lines_per_run`` training lines
    per run, and validation lines no closer together than those (the last one always), so a run
    of any length prints a readable few dozen lines. A no-op when a progress bar is shown."""

    def __init__(self, lines_per_run: int = 10, min_every_n_steps: int = 50, max_metrics: int = 5) -> None:
        super().__init__()
        self.lines_per_run, self.min_every_n_steps, self.max_metrics = lines_per_run, min_every_n_steps, max_metrics
        self._every, self._total, self._last_validation_line = min_every_n_steps, "?", None

    def _active(self, trainer: pl.Trainer) -> bool:
        return trainer.is_global_zero and trainer.progress_bar_callback is None

    def _line(self, trainer: pl.Trainer, prefix: str) -> str:
        values = []
        for key, value in trainer.callback_metrics.items():
            if key.startswith(prefix) and getattr(value, "numel", lambda: 1)() == 1:
                values.append(f"{key} {float(value):.4g}")
        return "  ".join(values[: self.max_metrics])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.estimated_stepping_batches  # max_steps, or epochs x batches; inf if unknown
        finite = math.isfinite(total) and total > 0
        self._total = int(total) if finite else "?"
        self._every = max(self.min_every_n_steps, math.ceil(total / self.lines_per_run)) if finite \
            else self.min_every_n_steps
        self._last_validation_line = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if self._active(trainer) and step % self._every == 0 and step > 0:
            print(f"step {step}/{self._total}  {self._line(trainer, 'train/')}", flush=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(trainer) or trainer.sanity_checking:
            return
        step, last = trainer.global_step, self._last_validation_line
        final = (isinstance(self._total, int) and step >= self._total) or (
            trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs)
        if last is None or step - last >= self._every or final or trainer.state.fn != "fit":
            self._last_validation_line = step
            print(f"epoch {trainer.current_epoch} (step {step})  {self._line(trainer, 'val/')}", flush=True)
