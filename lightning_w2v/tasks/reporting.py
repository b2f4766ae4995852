"""Test-time artefacts of a fine-tuning run: metrics JSON, confusion matrix PNG, W&B media."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from pytorch_lightning.loggers import WandbLogger

from ..analysis.plots import plot_confusion_matrix

log = logging.getLogger(__name__)


def report_test_results(module, confusion: torch.Tensor) -> None:
    """Write test_metrics.json and the confusion matrix (rank 0 only); log both to W&B."""
    if not module.trainer.is_global_zero:
        return

    out_dir: Path = module.results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    module.write_test_summary(out_dir / "test_metrics.json")
    spec = module.task_spec
    title = f"{spec.name} / {module.hparams.policy} / {module.encoder_spec.display_label}"
    # classes absent from the test split are left out
    png = plot_confusion_matrix(confusion.numpy(), list(spec.class_names), out_dir / "confusion_matrix.png",
                                title=title, axis_label=spec.axis_label)
    np.savetxt(out_dir / "confusion_matrix.csv", confusion.numpy().astype(int), fmt="%d", delimiter=",")
    log.info("test results written to %s", out_dir)
    log_image(module.logger, "test/confusion_matrix", png, caption=title)


def log_image(logger, key: str, path: Path, caption: str | None = None) -> None:
    """Log a PNG to W&B when the logger is a WandbLogger; a no-op otherwise."""
    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[str(path)], caption=[caption] if caption else None)
