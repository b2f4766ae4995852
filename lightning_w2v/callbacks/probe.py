"""Linear probes during pre-training: is the encoder learning pitch and instrument family?

:class:`LinearProbe` answers, while a pre-training run goes, the question a user would
otherwise ask only after days of pre-training and a fine-tuning: does the representation
carry what the paper's tasks need? At step 0 and every ``every_n_steps`` updates it

1. embeds a fixed set of labelled NSynth-layout notes with the current encoder, in eval mode
   and without gradients: ``per_class`` notes of every pitch and every family from
   ``fit_split`` (default ``train``) to fit on, and as many from ``eval_split`` (default
   ``valid``: other instruments, as NSynth's splits share none) to score;
2. mean-pools the CNN output and every hidden state, and fits a full-batch logistic
   regression per task on standardised features (:mod:`lightning_w2v.analysis.probes`:
   torch, fixed iterations, deterministic);
3. logs ``probe/{pitch,family}/{cnn,layer_0..L,best}`` to every logger (W&B draws them as
   line plots over the steps) and appends them to ``<run>/probe/probe.csv``.

Once, at the start, it also scores the baselines on the same notes with the same regression
(an untrained encoder of the same architecture, log-mel statistics, the majority class),
writes ``<run>/probe/probe_baselines.csv`` and logs them as flat lines
``probe/{task}/baseline_{untrained,logmel,majority}`` beside the curves.

With ``transcription`` (a MusicNet-format root, the 16 kHz cache built: pre-training's own
data, for the in-domain question) it also probes polyphonic transcription: a multi-label
logistic regression per representation on every frame of a fixed set of labelled training
windows, scored by frame AP on the held-out validation recordings' windows
(:mod:`lightning_w2v.analysis.frame_probes`), logged as ``probe/transcription_ap/*``; its
baselines are the untrained encoder, log-mel frames and the key prior.

Every run has one, as the top-level ``probe`` section of its config (LightningCLI adds it to
the trainer's callbacks). Without ``notes`` (the default of the real configs) it does
nothing; ``--probe.notes /data`` (an NSynth root) turns it on. It probes pre-training runs
only, on global rank 0.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from ..analysis.frame_probes import TASK as TRANSCRIPTION
from ..analysis.frame_probes import frame_baselines, probe_frames
from ..analysis.probes import (
    DEFAULT_PROBE_INTERVAL,
    as_rows,
    baseline_accuracies,
    label_arrays,
    pooled_layer_features,
    probe_all,
)
from ..data.nsynth import probe_notes
from ..data.transcription import probe_windows
from ..files import atomic_write_csv

log = logging.getLogger(__name__)
CSV_COLUMNS = ("step", "task", "feature", "accuracy")


class LinearProbe(pl.Callback):
    """Linear probes of pitch and family at step 0 and every ``every_n_steps`` updates (module docstring).

    Args:
        notes: an NSynth-layout root (``nsynth-<split>/``); ``None`` turns the probe off.
        every_n_steps: updates between probes (also probed at step 0 and at the end).
        per_class: notes of every pitch and every family per split.
        fit_split, eval_split: where the regression is fitted, and where it is scored.
        iterations: L-BFGS iterations of each regression.
        batch_size: notes per encoder forward.
        baselines: also score the untrained encoder, log-mel statistics and the majority class.
        seed: which notes, and the untrained baseline's initialisation.
        demo_notes: the notes are the synthetic demo NSynth (the demo configs): ``lightning-w2v fit``
            writes it to ``notes`` first if nothing is there, as the demo's data modules do (a
            callback writes no data set).
        transcription: a MusicNet-format root whose 16 kHz cache is built: also probe transcription.
        transcription_windows: labelled windows of 5 s for the transcription probe, per split.
    """

    def __init__(self, notes: str | None = None, every_n_steps: int = DEFAULT_PROBE_INTERVAL, per_class: int = 4,
                 fit_split: str = "train", eval_split: str = "valid", iterations: int = 100, batch_size: int = 16,
                 baselines: bool = True, seed: int = 0, demo_notes: bool = False, transcription: str | None = None,
                 transcription_windows: int = 16) -> None:
        super().__init__()
        self.transcription, self.transcription_windows = transcription, transcription_windows
        self._windows: tuple | None = None
        self.notes, self.every_n_steps, self.per_class = notes, every_n_steps, per_class
        self.fit_split, self.eval_split, self.iterations = fit_split, eval_split, iterations
        self.batch_size, self.baselines, self.seed, self.demo_notes = batch_size, baselines, seed, demo_notes
        self.history: list[dict[str, Any]] = []
        self.baseline_results: dict[str, dict[str, float]] = {}
        self.seconds = 0.0  # time spent probing, for the cost in BENCHMARKS.md
        self._data: tuple | None = None
        self._last_step: int | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.notes)

    def _load(self) -> tuple:
        if self._data is None:
            fit_records, fit_waves = probe_notes(self.notes, self.fit_split, self.per_class, self.seed)
            eval_records, eval_waves = probe_notes(self.notes, self.eval_split, self.per_class, self.seed)
            self._data = (fit_waves, label_arrays(fit_records), eval_waves, label_arrays(eval_records))
            rank_zero_info(f"linear probe: {len(fit_records)} {self.fit_split} and {len(eval_records)} "
                           f"{self.eval_split} notes from {self.notes}, every {self.every_n_steps} steps")
        return self._data

    def _load_windows(self) -> tuple | None:
        """The transcription probe's (fit, scored) windows and notes, or None without ``transcription``."""
        if self.transcription and self._windows is None:
            self._windows = tuple(probe_windows(self.transcription, split, self.transcription_windows, seed=self.seed)
                                  for split in ("train", "valid"))
            rank_zero_info(f"linear probe: transcription on {self.transcription_windows} train and valid windows "
                           f"of {self.transcription}")
        return self._windows

    def out_dir(self, trainer: pl.Trainer) -> Path:
        return Path(trainer.default_root_dir) / "probe"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.prepare(pl_module, stage if trainer.is_global_zero else "")

    def prepare(self, pl_module: pl.LightningModule, stage: str) -> None:
        """Load the note set: the CLI calls this before training starts, so that a missing or broken
        note set is reported first."""
        if not (self.enabled and stage == "fit"):
            return
        if getattr(pl_module, "checkpoint_kind", None) != "pretrain":
            rank_zero_info("linear probe: only pre-training runs are probed; ignoring probe.notes")
            self.notes = None
            return
        self._load()
        self._load_windows()

    # ------------------------------------------------------------------ probing
    def probe(self, backbone, device) -> dict[str, dict[str, float]]:
        """``{task: {feature: accuracy}}`` of ``backbone`` on the note set (the callback's own regression)."""
        fit_waves, fit_labels, eval_waves, eval_labels = self._load()
        fit = pooled_layer_features(backbone, fit_waves, self.batch_size, device)
        scored = pooled_layer_features(backbone, eval_waves, self.batch_size, device)
        results = probe_all(fit, scored, fit_labels, eval_labels, self.iterations)
        windows = self._load_windows()
        if windows is not None:
            results[TRANSCRIPTION] = probe_frames(backbone, *windows, self.iterations, device)
        return results

    def _run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step:
            return
        started = time.perf_counter()
        backbone = pl_module.model.backbone
        results = self.probe(backbone, pl_module.device)
        metrics = {f"probe/{task}/{feature}": accuracy for task, row in results.items()
                   for feature, accuracy in row.items()}
        for baseline, row in self.baseline_results.items():
            metrics.update({f"probe/{task}/baseline_{baseline}": accuracy for task, accuracy in row.items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        self.history += list(as_rows(results, step=step))
        out = self.out_dir(trainer)
        atomic_write_csv(out / "probe.csv", CSV_COLUMNS, ([r[c] for c in CSV_COLUMNS] for r in self.history))
        self._last_step = step
        self.seconds += time.perf_counter() - started
        best = ", ".join(f"{task} {row['best']:.3f}" for task, row in results.items())
        rank_zero_info(f"linear probe at step {step}: best layer {best}")

    def _write_baselines(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fit_waves, fit_labels, eval_waves, eval_labels = self._load()
        self.baseline_results = baseline_accuracies(pl_module.model.backbone, fit_waves, eval_waves, fit_labels,
                                                    eval_labels, self.seed, self.iterations, pl_module.device)
        windows = self._load_windows()
        if windows is not None:
            for baseline, value in frame_baselines(pl_module.model.backbone, *windows, self.seed, self.iterations,
                                                   pl_module.device).items():
                self.baseline_results.setdefault(baseline, {})[TRANSCRIPTION] = value
        rows = [[baseline, task, accuracy] for baseline, row in self.baseline_results.items()
                for task, accuracy in row.items()]
        atomic_write_csv(self.out_dir(trainer) / "probe_baselines.csv", ("baseline", "task", "accuracy"), rows)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        if self.baselines and not self.baseline_results:
            started = time.perf_counter()
            self._write_baselines(trainer, pl_module)
            self.seconds += time.perf_counter() - started
        if trainer.global_step == 0:
            self._run(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if self.enabled and trainer.is_global_zero and step > 0 and step % self.every_n_steps == 0:
            self._run(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and trainer.is_global_zero:
            self._run(trainer, pl_module)  # the final encoder, unless just probed
            rank_zero_info(f"linear probe: {self.seconds:.1f} s in all")

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "baselines": self.baseline_results}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.baseline_results = dict(state_dict.get("baselines", {}))

    def curves(self, task: str, feature: str = "best") -> tuple[Sequence[int], Sequence[float]]:
        """(steps, accuracies) of one task and feature over the run so far."""
        rows = [r for r in self.history if r["task"] == task and r["feature"] == feature]
        return [r["step"] for r in rows], [r["accuracy"] for r in rows]
