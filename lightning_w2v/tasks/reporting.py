"""Test-time artefacts of a fine-tuning run: metrics JSON, confusion matrix or piano roll, per-recording
predictions, W&B media."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.loggers import WandbLogger

from ..analysis.plots import plot_confusion_matrix, plot_piano_roll
from ..data.formats import PIANO_KEYS
from ..files.atomic import atomic_save

log = logging.getLogger(__name__)


def report_test_results(module, confusion: torch.Tensor | None, recordings: list[Path] = ()) -> None:
    """Write test_metrics.json, and the confusion matrix (single-label tasks) or a piano roll of the first
    test recording (frame-level tasks), on rank 0 only; log the figure to W&B."""
    if not module.trainer.is_global_zero:
        return

    out_dir: Path = module.results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    module.write_test_summary(out_dir / "test_metrics.json")
    spec = module.task_spec
    title = f"{spec.name} / {module.hparams.policy} / {module.encoder_spec.display_label}"
    if confusion is not None:
        # classes absent from the test split are left out
        png = plot_confusion_matrix(confusion.numpy(), list(spec.class_names), out_dir / "confusion_matrix.png",
                                    title=title, axis_label=spec.axis_label)
        np.savetxt(out_dir / "confusion_matrix.csv", confusion.numpy().astype(int), fmt="%d", delimiter=",")
        log_image(module.logger, "test/confusion_matrix", png, caption=title)
    if recordings:
        with np.load(recordings[0]) as first:
            keys = spec.num_keys
            png = plot_piano_roll(first["targets"][:, :keys], first["probs"][:, :keys], float(first["frame_rate"]),
                                  PIANO_KEYS[0], out_dir / "piano_roll.png",
                                  title=f"{title}: {recordings[0].stem}, first 10 s")
        log_image(module.logger, "test/piano_roll", png, caption=title)
    log.info("test results written to %s", out_dir)


def write_recording_predictions(module, recording: str, probabilities: np.ndarray, targets: np.ndarray) -> Path:
    """``<results>/test_predictions/<recording>.npz``: arrays ``probs`` and ``targets`` (T, outputs: the 88 keys
    from MIDI 21, then the instruments) and ``frame_rate`` (frames per second), written atomically."""
    folder = module.results_dir / "test_predictions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{recording}.npz"
    atomic_save(path, lambda handle: np.savez_compressed(handle, probs=probabilities.astype(np.float32),
                                                         targets=targets.astype(np.uint8),
                                                         frame_rate=np.float64(module.encoder.frame_rate)))
    return path


def log_image(logger, key: str, path: Path, caption: str | None = None) -> None:
    """Log a PNG to W&B when the logger is a WandbLogger; a no-op otherwise."""
    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[str(path)], caption=[caption] if caption else None)
