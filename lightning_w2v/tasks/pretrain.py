"""LightningModule for wav2vec 2.0 pre-training: optimiser, schedules, normalisation, logging."""
from __future__ import annotations

import math
import time
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from ..checkpoints.reader import stamp
from ..encoders import EncoderSpec, continued_pretraining_model, source_of
from ..errors import ConfigError
from ..models import Wav2Vec2ForPretraining
from ..vocabulary import SAMPLE_RATE
from .common import log_parameter_counts, skip_non_finite_update
from .schedules import gumbel_temperature, warmup_linear_decay

INIT_MODES = ("weights-only", "full-state")


class PretrainModule(pl.LightningModule):
    """Pre-trains :class:`Wav2Vec2ForPretraining` with fairseq's BASE recipe.

    Args:
        preset: ``base`` (the paper's model) or ``tiny`` (CPU tests and the demo).
        model_overrides: any :class:`Wav2Vec2Config` or :class:`PretrainingObjective` field, e.g.
            ``{num_negatives: 50}``.
        lr: peak learning rate (fairseq BASE: 5e-4).
        betas, eps, weight_decay: Adam settings (decoupled weight decay, as fairseq's Adam).
        warmup_steps: linear warm-up updates (BASE: 32k).
        total_steps: updates at which the LR reaches 0; default: the trainer's max_steps.
        clip_grad_norm: max global gradient norm; 0 (fairseq BASE's ``clip_norm``) disables
            clipping. The norm is logged either way.
        max_consecutive_skips: a run with this many non-finite updates in a row stops.
        compile: ``torch.compile`` the CNN, each Transformer layer and the quantizer in place
            (layerdrop then decides between compiled layers in Python: no recompiles; the
            weight-normed positional conv stays eager).
        init_from: continue pre-training from an existing model (see :class:`EncoderSpec`:
            our checkpoint, a torchaudio bundle, a transformers model or a fairseq .pt).
            A source without a quantizer (most exported encoders) gets a freshly initialised
            quantizer, projections and mask embedding, with a warning.
        init_mode: ``weights-only`` (fresh optimiser, schedule and temperature) or
            ``full-state`` (our checkpoints only: resume everything from it, as
            ``--ckpt_path`` does; the CLI passes it on).
    """

    checkpoint_kind = "pretrain"

    def __init__(
        self,
        preset: str = "base",
        model_overrides: dict[str, Any] | None = None,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        warmup_steps: int = 32_000,
        total_steps: int | None = None,
        clip_grad_norm: float = 0.0,
        max_consecutive_skips: int = 20,
        compile: bool = False,
        init_from: EncoderSpec | None = None,
        init_mode: str = "weights-only",
    ) -> None:
        super().__init__()
        if init_mode not in INIT_MODES:
            raise ConfigError(f"model.init_mode={init_mode!r}: choose one of {', '.join(INIT_MODES)}")
        self.save_hyperparameters()
        if init_from is not None and init_mode == "full-state":
            if not source_of(init_from).carries_training_state:
                raise ConfigError("model.init_mode=full-state needs model.init_from.source=checkpoint "
                                 "(only our own checkpoints carry optimiser and schedule state)")
            init_from = None  # the weights come with the full state (the CLI sets --ckpt_path)
        if init_from is not None:
            self.model = continued_pretraining_model(init_from, model_overrides)
        else:
            self.model = Wav2Vec2ForPretraining.from_preset(preset, **(model_overrides or {}))
        if compile:
            self.model.compile_pieces()
        self.skipped_updates = 0
        self._consecutive_skips = 0
        self._batch_started: float | None = None
        # Masked frames of the last training batch: this rank's, and summed over all ranks.
        self.last_num_masked: Tensor | None = None
        self.last_num_masked_global: Tensor | None = None

    @property
    def config(self):
        return self.model.config

    @property
    def objective(self):
        return self.model.objective

    @property
    def architecture(self) -> dict:
        """The model's architecture: what a checkpoint given to ``--ckpt_path`` must match."""
        return self.model.backbone.architecture()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The kind and the architecture travel with the weights, so any consumer can rebuild the model.
        stamp(checkpoint, self.checkpoint_kind, self.architecture, self.config, self.objective)
        # Counters that must survive a resume (train/skipped_updates continues, not restarts).
        checkpoint["pretrain_counters"] = {"skipped_updates": self.skipped_updates,
                                           "consecutive_skips": self._consecutive_skips}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counters = checkpoint.get("pretrain_counters", {})
        self.skipped_updates = int(counters.get("skipped_updates", 0))
        self._consecutive_skips = int(counters.get("consecutive_skips", 0))

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        log_parameter_counts(self, params)
        optimizer = torch.optim.AdamW(
            params, lr=self.hparams.lr, betas=tuple(self.hparams.betas), eps=self.hparams.eps,
            weight_decay=self.hparams.weight_decay,
            fused=torch.cuda.is_available() and all(p.is_cuda for p in params),
        )
        total = self.hparams.total_steps or self._trainer_total_steps()
        warmup = min(self.hparams.warmup_steps, max(total - 1, 0))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_linear_decay(step, warmup, total)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _trainer_total_steps(self) -> int:
        steps = self.trainer.max_steps
        if steps is None or steps < 0:
            steps = int(self.trainer.estimated_stepping_batches)
        if not math.isfinite(steps) or steps <= 0:
            raise ConfigError("set --trainer.max_steps or --model.init_args.total_steps: the LR schedule needs an end")
        return int(steps)

    def on_before_optimizer_step(self, optimizer) -> None:
        max_norm = self.hparams.clip_grad_norm or float("inf")
        params = [p for p in self.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.log("train/grad_norm", grad_norm, on_step=True, prog_bar=False)
        skip_non_finite_update(self, grad_norm, params)

    # ------------------------------------------------------------------ steps
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        cfg = self.objective
        temperature = gumbel_temperature(self.global_step, cfg.temperature_max, cfg.temperature_min,
                                         cfg.temperature_decay)
        self.model.set_temperature(temperature)
        self._batch_started = time.perf_counter()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.model(batch["waveforms"], batch.get("lengths"))
        total_masked = self._global_masked_frames(out.num_masked)
        self.last_num_masked, self.last_num_masked_global = out.num_masked.detach(), total_masked
        # Sum over masked frames of all ranks / their count; DDP averages gradients over
        # ranks, so scale by the world size to get the global mean per masked frame. Under
        # accumulate_grad_batches Lightning averages these per-batch means; fairseq divides the
        # summed losses of an update by its summed masked frames. With require_same_masks and
        # equal-length crops the counts of an update's batches are close, so the two agree
        # to within the spread of those counts.
        loss = out.loss * self.trainer.world_size / total_masked.clamp_min(1)
        self._log_step(out, batch, "train")
        self.log("train/temperature", self.model.quantizer.temperature, on_step=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True)
        self.log("train/num_masked_global", total_masked.float(), on_step=True, reduce_fx="sum")
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._batch_started is None:
            return
        elapsed = time.perf_counter() - self._batch_started
        audio_seconds = batch["waveforms"].numel() / SAMPLE_RATE
        self.log("train/audio_seconds_per_second", audio_seconds / max(elapsed, 1e-9), on_step=True)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        # Deterministic masks and negatives, so validation losses are comparable across epochs.
        generator = torch.Generator().manual_seed(batch_idx)
        waveforms = batch["waveforms"]
        cfg = self.config
        frames = cfg.num_frames(waveforms.shape[1])
        frame_lengths = None
        if batch.get("lengths") is not None:
            frame_lengths = torch.tensor([cfg.num_frames(int(n)) for n in batch["lengths"].cpu()])
        mask = self.model.compute_mask(waveforms.shape[0], frames, frame_lengths, generator=generator)
        negatives = self.model.sample_negatives(mask, generator=generator)
        out = self.model(waveforms, batch.get("lengths"), mask=mask.to(self.device),
                         negative_indices=negatives.to(self.device))
        self._log_step(out, batch, "val")

    def _global_masked_frames(self, num_masked: Tensor) -> Tensor:
        total = num_masked.detach().clone()
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.all_reduce(total)
        return total

    def _log_step(self, out, batch: dict[str, Tensor], stage: str) -> None:
        masked = out.num_masked.clamp_min(1).float()
        on_step = stage == "train"
        metrics = {
            # fairseq reports the loss in bits per masked frame.
            f"{stage}/loss": out.loss.detach() / masked / math.log(2),
            f"{stage}/contrastive_loss": out.contrastive_loss.detach() / masked / math.log(2),
            f"{stage}/diversity_loss": out.diversity_loss.detach(),
            f"{stage}/feature_penalty": out.feature_penalty.detach(),
            f"{stage}/prob_perplexity": out.prob_perplexity.detach(),
            f"{stage}/code_perplexity": out.code_perplexity.detach(),
            f"{stage}/accuracy": out.contrastive_accuracy.detach(),
            f"{stage}/masked_fraction": masked / out.mask.numel(),
        }
        batch_size = batch["waveforms"].shape[0]
        shown = {f"{stage}/contrastive_loss", f"{stage}/accuracy"}  # also on the progress bar
        for prog_bar, group in ((True, shown), (False, set(metrics) - shown)):
            self.log_dict({k: metrics[k] for k in group}, on_step=on_step, on_epoch=not on_step,
                          batch_size=batch_size, sync_dist=not on_step, prog_bar=prog_bar)
