"""LightningModule for fine-tuning any encoder on any downstream task under the paper's FE / FT1 / FT2 policies.

Nothing here is task- or encoder-specific: the task's spec (:mod:`lightning_w2v.downstream`)
says what a label is, the outputs, the loss and the metrics; the encoder
(:mod:`lightning_w2v.encoders`) says its hidden states and its trainable parts.

Freezing is static: the policy decides in ``__init__`` which parameters have
``requires_grad``, and ``configure_optimizers`` builds its groups from them. Both run again
identically on ``--ckpt_path`` resume, so the frozen set and the LR groups survive it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from ..checkpoints.reader import stamp
from ..downstream import task_spec
from ..encoders import EncoderSpec, load_encoder
from ..errors import ConfigError
from ..files import atomic_write_text
from ..models.backbone import Wav2Vec2Backbone
from .common import log_parameter_counts
from .heads import PooledClassifier
from .policies import get_policy, policy_part
from .reporting import report_test_results

log = logging.getLogger(__name__)



class FinetuneModule(pl.LightningModule):
    """A head on an encoder, for one downstream task (mean-pooled linear head for clip-level tasks).

    Args:
        encoder: where the encoder comes from (see :class:`EncoderSpec`).
        task: the downstream task (``lightning_w2v.downstream``), e.g. ``pitch`` (112 classes, MIDI
            9..120) or ``instrument`` (11 families). In a config it is written once, as
            ``data.init_args.task``; the CLI passes it on.
        policy: ``FE`` (frozen encoder in eval mode, head only), ``FT1`` (everything trains)
            or ``FT2`` (CNN frozen; projection and Transformer train); see
            :data:`~lightning_w2v.tasks.policies.POLICY_TABLE`.
        encoder_lr: LR of the encoder's trainable weights (default: the policy's, 1e-5).
        head_lr: LR of the head (default: the policy's, 1e-3 for FE and 1e-4 for FT1/FT2).
        layer: which representation the head reads: ``last`` (the paper), a hidden-state index
            (wav2vec 2.0: 0 = Transformer input, i = layer i), or ``weighted`` (learned softmax
            weights over all of them).
        standardize_features: non-affine BatchNorm on the pooled features before the linear
            layer (linear-probing practice; off for the paper's plain linear head).
        cache_frozen_features: under FE the encoder is frozen and in eval mode, so its pooled
            output for a given note never changes: keep it (keyed by the batch's ``index``)
            after the first epoch, and later epochs only run the head. No effect otherwise.
        seed: recorded with the test metrics, so results can be aggregated by seed.
        results_dir: where ``test_metrics.json`` and the confusion matrix go (default: the
            trainer's root dir).
    """

    checkpoint_kind = "finetune"

    def __init__(
        self,
        encoder: EncoderSpec,
        task: str | None = None,
        policy: str = "FT2",
        encoder_lr: float | None = None,
        head_lr: float | None = None,
        layer: str | int = "last",
        standardize_features: bool = False,
        cache_frozen_features: bool = True,
        seed: int = 0,
        results_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.task_spec = task_spec(task)
        self.policy = get_policy(policy)
        self.save_hyperparameters()
        self.encoder_spec = encoder if isinstance(encoder, EncoderSpec) else EncoderSpec(**encoder)
        self.encoder = load_encoder(self.encoder_spec)  # fine-tuning: the CNN gets its full gradient
        self.num_classes = self.task_spec.num_outputs
        self.head = PooledClassifier(self.encoder.hidden_sizes, self.num_classes, layer=layer,
                                     standardize=standardize_features)
        self._apply_policy()
        self.train_metrics = self.task_spec.metrics("train")  # one torchmetrics object per split
        self.val_metrics = self.task_spec.metrics("val")
        self.test_metrics = self.task_spec.metrics("test")
        self.test_confusion = self.task_spec.confusion_matrix()
        self._pooled_cache: dict[str, dict[int, Tensor]] = {}  # stage -> note index -> (S, E)
        # Lightning keeps the modules' modes as they are at fit start (it never calls train()),
        # so apply the policy's modes now, and again at each epoch start.
        self.train()

    def setup(self, stage: str) -> None:
        self.check_data(self.trainer.datamodule if self._trainer else None)

    def check_data(self, datamodule: pl.LightningDataModule | None) -> None:
        """ConfigError unless the data module serves this model's task (the CLI calls it before training)."""
        data_task = (getattr(datamodule, "hparams", None) or {}).get("task")
        if data_task is not None and data_task != self.hparams.task:
            raise ConfigError(f"model.init_args.task={self.hparams.task!r} but data.init_args.task={data_task!r}: "
                              "set both to the same task")

    @property
    def architecture(self) -> dict:
        """The encoder's architecture: what a checkpoint given to ``--ckpt_path`` must match."""
        return self.encoder.architecture()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A wav2vec 2.0-family encoder's config too: it can then be rebuilt alone (encoder.source=checkpoint)
        config = self.encoder.config if isinstance(self.encoder, Wav2Vec2Backbone) else None
        stamp(checkpoint, self.checkpoint_kind, self.architecture, config)

    # ------------------------------------------------------------------ policy
    def _part(self, name: str) -> nn.Module:
        return policy_part(self.encoder, self.policy, name, self.encoder_spec.display_label)

    def _apply_policy(self) -> None:
        for part in self.policy.frozen:
            self._part(part).requires_grad_(False)

    def train(self, mode: bool = True) -> "FinetuneModule":
        super().train(mode)
        for part in self.policy.eval_mode:
            self._part(part).eval()  # frozen parts: no dropout, no layerdrop
        return self

    def on_train_epoch_start(self) -> None:
        self.train()

    @property
    def learning_rates(self) -> dict[str, float | None]:
        """``{"head": lr, "encoder": lr}``: the explicit values, else the policy's defaults."""
        hp = self.hparams
        return {"head": hp.head_lr if hp.head_lr is not None else self.policy.head_lr,
                "encoder": hp.encoder_lr if hp.encoder_lr is not None else self.policy.encoder_lr}

    def configure_optimizers(self):
        lrs = self.learning_rates
        encoder_params = [p for p in self.encoder.parameters() if p.requires_grad]
        head_params = [p for p in self.head.parameters() if p.requires_grad]
        log_parameter_counts(self, encoder_params + head_params)
        groups = [{"params": head_params, "lr": lrs["head"], "name": "head"}]
        if encoder_params:
            groups.append({"params": encoder_params, "lr": lrs["encoder"], "name": "encoder"})
        return torch.optim.Adam(groups)

    # ------------------------------------------------------------------ forward
    def forward(self, waveforms: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, S) audio -> (B, num_classes) logits."""
        return self.head.classify(self.pooled_features(waveforms, lengths))

    def pooled_features(self, waveforms: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, S) audio -> (B, S', E) time-pooled encoder output the head reads."""
        # A frozen CNN runs without autograd inside the backbone; a wholly frozen encoder here.
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.policy.trains_encoder):
            out = self.encoder(waveforms, lengths, output_hidden_states=self.head.reads_hidden_states)
        return self.head.pool(out)

    def _cached_pooled_features(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """FE only: pooled features from the cache, computing (and keeping) the missing ones."""
        cache = self._pooled_cache.setdefault(stage, {})
        keys = batch["index"].tolist()
        missing = [i for i, key in enumerate(keys) if key not in cache]
        if missing:
            rows = torch.tensor(missing, device=batch["waveforms"].device)
            lengths = batch.get("lengths")
            fresh = self.pooled_features(batch["waveforms"][rows], None if lengths is None else lengths[rows])
            for row, features in zip(missing, fresh.detach()):
                cache[keys[row]] = features
        return torch.stack([cache[key] for key in keys])  # (B, S', E)

    # ------------------------------------------------------------------ steps
    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        cacheable = (not self.policy.trains_encoder and self.hparams.cache_frozen_features and "index" in batch
                     and self.head.layer != "weighted")  # all layers of every note would not fit in memory
        if cacheable:
            logits = self.head.classify(self._cached_pooled_features(batch, stage))
        else:
            logits = self(batch["waveforms"], batch.get("lengths"))
        spec = self.task_spec
        labels = batch[spec.label_key]
        loss = spec.loss(logits, labels)
        batch_size = labels.shape[0]
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits.float(), labels)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=batch_size,
                 sync_dist=not on_step)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=batch_size)
        if stage == "test":
            self.test_confusion.update(spec.predictions(logits), labels)
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def on_test_epoch_end(self) -> None:
        report_test_results(self, self.test_confusion.compute().cpu())

    @property
    def results_dir(self) -> Path:
        root = self.hparams.results_dir or (self.trainer.default_root_dir if self._trainer else ".")
        return Path(root)

    def test_summary(self) -> dict[str, Any]:
        """What ``test_metrics.json`` holds: enough to place the run in the results table."""
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test/")}
        return {
            "task": self.hparams.task,
            "policy": self.hparams.policy,
            "encoder": self.encoder_spec.display_label,
            "encoder_source": self.encoder_spec.source,
            "encoder_path": self.encoder_spec.path,
            "layer": self.hparams.layer,
            "seed": self.hparams.seed,
            "metrics": metrics,
        }

    def write_test_summary(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.test_summary(), indent=2))
