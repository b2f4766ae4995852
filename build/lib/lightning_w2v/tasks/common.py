"""Pieces both LightningModules share: parameter accounting and non-finite update handling."""
from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from ..errors import LightningW2VError

log = logging.getLogger(__name__)


class NonFiniteUpdatesError(LightningW2VError, RuntimeError):
    """Too many consecutive updates had a non-finite loss or gradient."""


def log_parameter_counts(module: pl.LightningModule, trainable: list[nn.Parameter]) -> tuple[int, int]:
    """Print and log 'trainable / total' parameters; returns both counts."""
    total = sum(p.numel() for p in module.parameters())
    count = sum(p.numel() for p in trainable)
    message = f"trainable parameters: {count:,} / {total:,} ({100.0 * count / max(total, 1):.1f}%)"
    log.info(message)
    if module._trainer is None:  # called outside a Trainer (e.g. from a test)
        return count, total
    if module.trainer.is_global_zero:
        print(message, flush=True)
    if module.logger is not None:
        module.logger.log_hyperparams({"params/trainable": count, "params/total": total})
    return count, total


def skip_non_finite_update(module: pl.LightningModule, grad_norm: Tensor, params: list[nn.Parameter]) -> bool:
    """Drop this update if the gradient norm is not finite. Returns True if skipped.

    Setting every ``.grad`` to None makes the optimiser's step a no-op: Adam neither moves
    the parameters nor touches its moments or step count for parameters without a
    gradient. Under DDP the gradients are already all-reduced, so every rank sees the same
    non-finite norm and skips together.
    """
    if torch.isfinite(grad_norm):
        module._consecutive_skips = 0
        module.log("train/skipped_updates", float(module.skipped_updates), on_step=True)
        return False
    for p in params:
        p.grad = None
    module.skipped_updates += 1
    module._consecutive_skips += 1
    module.log("train/skipped_updates", float(module.skipped_updates), on_step=True)
    log.warning("step %d: non-finite gradient norm (%s); update skipped (%d in a row)",
                module.global_step, grad_norm.item(), module._consecutive_skips)
    limit = getattr(module.hparams, "max_consecutive_skips", 0) or 0
    if limit and module._consecutive_skips >= limit:
        checkpoint = None
        callback = getattr(module.trainer, "checkpoint_callback", None)
        if callback is not None:
            checkpoint = callback.last_model_path or callback.best_model_path or None
        raise NonFiniteUpdatesError(
            f"{module._consecutive_skips} consecutive updates had a non-finite loss or gradient "
            f"(last at step {module.global_step}); the run has diverged. Last good checkpoint: "
            f"{checkpoint or 'none written yet'}. Lower the learning rate, check the data, or "
            "resume from that checkpoint with --ckpt_path."
        )
    return True
