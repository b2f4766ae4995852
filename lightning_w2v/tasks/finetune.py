"""LightningModule for NSynth fine-tuning under the paper's FE / FT1 / FT2 policies.

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
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from ..checkpoints.encoders import EncoderSpec, load_encoder
from ..checkpoints.reader import stamp
from ..data.formats import MIN_PITCH, NUM_CLASSES
from ..errors import ConfigError
from ..files import atomic_write_text
from .common import log_parameter_counts
from .heads import PooledClassifier
from .policies import get_policy
from .reporting import report_test_results

log = logging.getLogger(__name__)



class FinetuneModule(pl.LightningModule):
    """Mean-pooled linear classifier on a wav2vec 2.0 encoder.

    Args:
        encoder: where the encoder comes from (see :class:`EncoderSpec`).
        task: ``pitch`` (112 classes, MIDI 9..120) or ``instrument`` (11 families).
        policy: ``FE`` (frozen encoder in eval mode, head only), ``FT1`` (everything trains)
            or ``FT2`` (CNN frozen; projection and Transformer train); see
            :data:`~lightning_w2v.tasks.policies.POLICY_TABLE`.
        encoder_lr: LR of the encoder's trainable weights (default: the policy's, 1e-5).
        head_lr: LR of the head (default: the policy's, 1e-3 for FE and 1e-4 for FT1/FT2).
        layer: which representation the head reads: ``last`` (the paper), a layer index
            (0 = Transformer input, i = layer i), or ``weighted`` (learned softmax weights
            over all of them).
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
        task: str = "pitch",
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
        if task not in NUM_CLASSES:
            raise ConfigError(f"model.init_args.task={task!r}: choose 'pitch' or 'instrument'")
        self.policy = get_policy(policy)
        self.save_hyperparameters()
        self.encoder_spec = encoder if isinstance(encoder, EncoderSpec) else EncoderSpec(**encoder)
        self.encoder = load_encoder(self.encoder_spec)
        self.encoder.config.feature_grad_mult = 1.0  # fine-tuning: the CNN gets its full gradient
        self.num_classes = NUM_CLASSES[task]
        self.head = PooledClassifier(self.encoder.config.embed_dim, self.num_classes,
                                     num_hidden_states=self.encoder.num_layers + 1, layer=layer,
                                     standardize=standardize_features)
        self._apply_policy()
        self.train_metrics = self._make_metrics("train")  # one torchmetrics object per split
        self.val_metrics = self._make_metrics("val")
        self.test_metrics = self._make_metrics("test")
        self.test_confusion = MulticlassConfusionMatrix(num_classes=self.num_classes)
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
    def architecture(self):
        """The encoder's config: what a checkpoint given to ``--ckpt_path`` must match."""
        return self.encoder.config

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        stamp(checkpoint, self.checkpoint_kind, self.encoder.config)  # the encoder can be rebuilt alone

    # ------------------------------------------------------------------ policy
    def _apply_policy(self) -> None:
        for path in self.policy.frozen:
            self.encoder.get_submodule(path).requires_grad_(False)

    def train(self, mode: bool = True) -> "FinetuneModule":
        super().train(mode)
        for path in self.policy.eval_mode:
            self.encoder.get_submodule(path).eval()  # frozen parts: no dropout, no layerdrop
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
    def _make_metrics(self, stage: str) -> MetricCollection:
        metrics: dict[str, Any] = {
            "acc": MulticlassAccuracy(num_classes=self.num_classes, average="micro"),
            "acc_top5": MulticlassAccuracy(num_classes=self.num_classes, top_k=5, average="micro"),
            "f1_macro": MulticlassF1Score(num_classes=self.num_classes, average="macro"),
        }
        # compute_groups=False: torchmetrics may otherwise merge acc_top5 and f1_macro into one
        # state group after a one-class first batch and report F1 from top-5 counts.
        return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)

    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        cacheable = (not self.policy.trains_encoder and self.hparams.cache_frozen_features and "index" in batch
                     and self.head.layer != "weighted")  # all layers of every note would not fit in memory
        if cacheable:
            logits = self.head.classify(self._cached_pooled_features(batch, stage))
        else:
            logits = self(batch["waveforms"], batch.get("lengths"))
        labels = batch["labels"]
        loss = nn.functional.cross_entropy(logits.float(), labels)
        batch_size = labels.shape[0]
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits.float(), labels)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=batch_size,
                 sync_dist=not on_step)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=batch_size)
        if self.hparams.task == "pitch":
            chroma_hits = ((logits.argmax(-1) + MIN_PITCH) % 12 == (labels + MIN_PITCH) % 12).float().mean()
            self.log(f"{stage}/chroma_acc", chroma_hits, on_step=False, on_epoch=True, batch_size=batch_size,
                     sync_dist=True)
        if stage == "test":
            self.test_confusion.update(logits.argmax(-1), labels)
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
