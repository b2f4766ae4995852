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

import numpy as np
import pytorch_lightning as pl
import torch
import torchaudio
from torch import Tensor, nn

from ..checkpoints.reader import stamp
from ..downstream import task_spec
from ..encoders import EncoderSpec, load_encoder
from ..errors import ConfigError
from ..files import atomic_write_text
from ..models.backbone import Wav2Vec2Backbone
from ..models.windows import run_in_windows
from ..vocabulary import SAMPLE_RATE
from .common import log_parameter_counts
from .feature_store import StoredFeatures, describe_store, encoder_fingerprint, short_hash
from .file_scores import FileAverager
from .heads import make_head
from .policies import get_policy, policy_part
from .reporting import report_test_results, write_recording_predictions

log = logging.getLogger(__name__)
FRAME_CACHE_BYTES = 2 << 30  # a frozen encoder's frame features are kept up to 2 GiB (clip features are small)



class FinetuneModule(pl.LightningModule):
    """A head on an encoder, for one downstream task (mean-pooled linear head for clip-level tasks).

    Args:
        encoder: where the encoder comes from (see :class:`EncoderSpec`).
        task: the downstream task (``lightning_w2v.downstream``), e.g. ``pitch`` (112 classes, MIDI
            9..120) or ``instrument`` (11 families). In a config it is written once, as
            ``data.init_args.task``; the CLI passes it on.
        task_definition: the ``manifest`` task's kind and class / tag / target names; the CLI sets it
            from the data's manifest (:mod:`lightning_w2v.downstream.manifest`), and the checkpoint keeps it.
        policy: ``FE`` (frozen encoder in eval mode, head only), ``FT1`` (everything trains)
            or ``FT2`` (CNN frozen; projection and Transformer train); see
            :data:`~lightning_w2v.tasks.policies.POLICY_TABLE`.
        encoder_lr: LR of the encoder's trainable weights (default: the policy's, 1e-5).
        head_lr: LR of the head (default: the policy's, 1e-3 for FE and 1e-4 for FT1/FT2).
        layer: which representation the head reads: ``last`` (the paper), a hidden-state index
            (wav2vec 2.0: 0 = Transformer input, i = layer i), or ``weighted`` (learned softmax
            weights over all of them).
        head: ``linear`` (the paper's) or ``mlp`` (one hidden layer of 512 with ReLU and dropout
            0.2, MARBLE's probe).
        standardize_features: non-affine BatchNorm on the pooled features before the linear
            layer (linear-probing practice; off for the paper's plain linear head).
        cache_frozen_features: under FE the encoder is frozen and in eval mode, so its pooled
            output for a given note never changes: keep it (keyed by the batch's ``index``)
            after the first epoch, and later epochs only run the head. No effect otherwise.
        feature_store: where clip-level FE features are kept on disk, for this run and every later run
            over the same items with the same encoder (:mod:`lightning_w2v.tasks.feature_store`):
            ``auto`` (the data module's ``feature_store_root``, e.g. ``<cache_dir>/features`` for the
            clip-level sets; in memory where it has none), a folder, or ``memory`` (this run only).
        seed: recorded with the test metrics, so results can be aggregated by seed.
        results_dir: where ``test_metrics.json`` and the confusion matrix go (default: the
            trainer's root dir).
        test_window_seconds, test_context_seconds, test_windows_per_forward: frame-level tasks
            test whole recordings, in windows of this length overlapping by twice the context,
            this many windows per encoder pass (an attention encoder's memory then stays that of
            those windows, whatever the recording's length; see :mod:`lightning_w2v.models.windows`).
    """

    checkpoint_kind = "finetune"

    def __init__(
        self,
        encoder: EncoderSpec,
        task: str | None = None,
        task_definition: dict | None = None,
        policy: str = "FT2",
        encoder_lr: float | None = None,
        head_lr: float | None = None,
        layer: str | int = "last",
        head: str = "linear",
        standardize_features: bool = False,
        cache_frozen_features: bool = True,
        feature_store: str | None = "auto",
        seed: int = 0,
        results_dir: str | None = None,
        test_window_seconds: float = 10.0,
        test_context_seconds: float = 2.5,
        test_windows_per_forward: int = 4,
    ) -> None:
        super().__init__()
        self.task_spec = task_spec(task, definition=task_definition)
        self.policy = get_policy(policy)
        self.save_hyperparameters()
        self.encoder_spec = encoder if isinstance(encoder, EncoderSpec) else EncoderSpec(**encoder)
        self.encoder = load_encoder(self.encoder_spec)  # fine-tuning: the CNN gets its full gradient
        self.num_classes = self.task_spec.num_outputs
        self.head = make_head(self.task_spec.per_frame, self.encoder.hidden_sizes, self.num_classes, layer=layer,
                              standardize=standardize_features, kind=head)
        self._apply_policy()
        self.train_metrics = self.task_spec.metrics("train")  # one torchmetrics object per split
        self.val_metrics = self.task_spec.metrics("val")
        self.test_metrics = self.task_spec.metrics("test")
        self.test_confusion = self.task_spec.confusion_matrix()  # single-label tasks only
        self._feature_cache: dict[str, dict[int, Tensor]] = {}  # stage -> item index -> (S, E) or (T, E)
        self._cache_full_warned = False
        self._stores: dict[str, StoredFeatures] = {}  # stage -> features on disk (clip-level FE)
        self._store_folder: Path | None = None
        self._recording_scores: list[dict[str, float]] = []  # per whole test recording (frame-level tasks)
        self._recordings: list[Path] = []
        self._files = {"val": FileAverager(), "test": FileAverager()}  # slices of longer files, averaged per file
        self.recording_metrics: dict[str, float] = {}  # test metrics computed at epoch end (per recording or file)
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
        if "train" not in self._stores:
            self._open_store("train")

    def on_train_epoch_end(self) -> None:
        self._finish_store("train")

    def on_validation_epoch_start(self) -> None:
        if "val" not in self._stores:
            self._open_store("val")

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
        """(B, S) audio -> the head's outputs: (B, outputs) for clip-level tasks, (B, T, outputs) per frame."""
        return self.head.classify(self.head_features(waveforms, lengths))

    def head_features(self, waveforms: Tensor, lengths: Tensor | None = None,
                      sample_rate: int = SAMPLE_RATE) -> Tensor:
        """(B, S) audio at ``sample_rate`` -> what the head reads: (B, S', E) time-pooled features for
        clip-level tasks, (B, T, E) frames for frame-level ones."""
        # A frozen CNN runs without autograd inside the backbone; a wholly frozen encoder here.
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.policy.trains_encoder):
            out = self.encoder(waveforms, lengths, output_hidden_states=self.head.reads_hidden_states,
                               sample_rate=sample_rate)
        return self.head.features(out)

    pooled_features = head_features  # its name up to 0.2

    # ------------------------------------------------------------------ FE features kept
    def _store_root(self) -> Path | None:
        choice = self.hparams.get("feature_store", "auto")
        if choice in (None, "memory"):
            return None
        if choice != "auto":
            return Path(choice).expanduser()
        root = getattr(self.trainer.datamodule, "feature_store_root", None)
        return None if root is None else Path(root)

    def _stage_dataset(self, stage: str) -> Any:
        loaders = getattr(self.trainer, {"train": "train_dataloader", "val": "val_dataloaders",
                                         "test": "test_dataloaders"}[stage])
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if len(loaders) == 1 else None
        return getattr(loaders, "dataset", None)

    def _open_store(self, stage: str) -> None:
        """Open the disk store of ``stage``'s data set: clip-level FE over a data set that can say what its
        features depend on (``feature_identity``), where a store folder is configured."""
        self._stores.pop(stage, None)
        if self.policy.trains_encoder or not self.hparams.cache_frozen_features or self.task_spec.per_frame:
            return
        dataset, root = self._stage_dataset(stage), self._store_root()
        if root is None or not hasattr(dataset, "feature_identity"):
            return
        if self._store_folder is None:
            reads = "all layers" if self.head.layer == "weighted" else self.head.layer
            parts = {"encoder": encoder_fingerprint(self.encoder), "reads": reads, "pooling": "mean over frames",
                     "precision": str(self.trainer.precision)}
            self._store_folder = root / short_hash(parts)
            if self.trainer.is_global_zero:
                describe_store(self._store_folder, {**parts, "encoder_label": self.encoder_spec.display_label})
        path = self._store_folder / f"{short_hash(dataset.feature_identity())}.npy"
        self._stores[stage] = StoredFeatures(path, len(dataset), self.trainer.strategy)
        self._serve_audio(stage)

    def _serve_audio(self, stage: str) -> None:
        """A data set whose every item's features are stored need not read its audio (where it can skip it)."""
        dataset = self._stage_dataset(stage)
        if hasattr(dataset, "serve_audio"):
            dataset.serve_audio(not self._stores[stage].complete)

    def _finish_store(self, stage: str) -> None:
        if stage in self._stores:
            self._stores[stage].finish(self.trainer.strategy, self.device)
            self._serve_audio(stage)

    def teardown(self, stage: str) -> None:
        for name, store in list(self._stores.items()):
            if not store.complete:  # a store this run could not finish leaves no part file behind
                store.discard()
                del self._stores[name]

    def _stored_features(self, store: StoredFeatures, batch: dict[str, Tensor]) -> Tensor:
        """(B, S, E) features of the batch's items from the disk store, extracting (and storing) missing ones."""
        index = batch["index"].cpu().numpy()
        missing = store.missing(index)
        if missing.any():
            fresh = self._features_of_rows(batch, np.flatnonzero(missing).tolist())
            store.put(index[missing], fresh.float().cpu().numpy())
        return torch.from_numpy(store.get(index)).to(self.device)

    def _features_of_rows(self, batch: dict[str, Tensor], rows: list[int]) -> Tensor:
        """What the head reads for the batch's items at ``rows`` (the encoder runs on those alone)."""
        picked = torch.tensor(rows, device=batch["waveforms"].device)
        lengths = batch.get("lengths")
        return self.head_features(batch["waveforms"][picked], None if lengths is None else lengths[picked]).detach()

    def _cached_features(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        """FE only: the head's features from the disk store or the in-memory cache, computing (and keeping)
        the missing ones."""
        if stage in self._stores:
            return self._stored_features(self._stores[stage], batch)
        cache = self._feature_cache.setdefault(stage, {})
        keys = batch["index"].tolist()
        missing = [i for i, key in enumerate(keys) if key not in cache]
        if missing:
            for row, features in zip(missing, self._features_of_rows(batch, missing)):
                cache[keys[row]] = features
        return torch.stack([cache[key] for key in keys])  # (B, S', E) or (B, T, E)

    def _caches(self, batch: dict[str, Tensor], stage: str) -> bool:
        """Whether this batch's features come from the FE cache: a frozen encoder, items with an index, one
        layer (all layers of every item would not fit), and frames only while the cache stays under
        :data:`FRAME_CACHE_BYTES`."""
        if stage in self._stores and "index" in batch:
            return True  # a disk store (clip-level FE), for every layer selection
        if self.policy.trains_encoder or not self.hparams.cache_frozen_features or "index" not in batch \
                or self.head.layer == "weighted":
            return False
        if not self.task_spec.per_frame:
            return True
        cached = sum(f.numel() * f.element_size() for c in self._feature_cache.values() for f in c.values())
        if cached < FRAME_CACHE_BYTES:
            return True
        if not self._cache_full_warned:
            log.warning("the frozen encoder's frame features fill %.1f GiB: later batches are encoded again",
                        FRAME_CACHE_BYTES / 2**30)
            self._cache_full_warned = True
        return any(int(key) in self._feature_cache.get(stage, {}) for key in batch["index"])

    def _valid_frames(self, batch: dict[str, Tensor], count: int, device) -> Tensor | None:
        """(B, T) True at the frames of each item's own audio (None when the batch is unpadded)."""
        lengths = batch.get("lengths")
        if lengths is None:
            return None
        frames = torch.tensor([self.encoder.num_frames(int(n)) for n in lengths], device=device)
        return torch.arange(count, device=device)[None, :] < frames[:, None]

    # ------------------------------------------------------------------ steps
    def _shared_step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        if self._caches(batch, stage):
            outputs = self.head.classify(self._cached_features(batch, stage))
        else:
            outputs = self(batch["waveforms"], batch.get("lengths"))
        loss, _ = self._score(batch, outputs, stage)
        return loss

    def _score(self, batch: dict[str, Tensor], outputs: Tensor, stage: str) -> tuple[Tensor, Tensor]:
        """The loss of the head's ``outputs`` for ``batch``, and its targets; loss and metrics are logged
        under ``stage``."""
        spec = self.task_spec
        frame_times = valid = None
        if spec.per_frame:
            frame_times = self.encoder.frame_times(outputs.shape[1]).to(outputs.device, torch.float32)
            valid = self._valid_frames(batch, outputs.shape[1], outputs.device)
        targets = spec.targets(batch, frame_times)
        loss = spec.loss(outputs, targets, valid)
        batch_size = outputs.shape[0]
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=batch_size,
                 sync_dist=not on_step)
        if "file" in batch and stage != "train":  # slices of longer files: the files are scored at epoch end
            self._files[stage].add(batch["file"], outputs, targets)
            return loss, targets
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(*spec.metric_inputs(outputs, targets, valid))
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=batch_size)
        if stage == "test" and self.test_confusion is not None:
            self.test_confusion.update(outputs.argmax(dim=-1), targets)
        return loss, targets

    def _score_files(self, stage: str) -> dict[str, float]:
        """The metrics of the files whose slices this epoch scored (their outputs averaged per file); {} if none."""
        averaged = self._files[stage].averaged()
        self._files[stage].reset()
        if averaged is None:
            return {}
        outputs, targets = averaged
        metrics = getattr(self, f"{stage}_metrics")
        metrics.reset()
        metrics.update(*self.task_spec.metric_inputs(outputs.to(self.device), targets.to(self.device), None))
        values = {name: float(value) for name, value in metrics.compute().items()}
        metrics.reset()
        if stage == "test" and self.test_confusion is not None:
            self.test_confusion.update(outputs.argmax(dim=-1).to(self.device), targets.to(self.device))
        for name, value in values.items():
            self.log(name, value, prog_bar=True)
        return values

    def on_validation_epoch_end(self) -> None:
        self._finish_store("val")
        values = self._score_files("val") or {k: float(v) for k, v in self.trainer.callback_metrics.items()
                                              if k.startswith("val/")}
        monitored = values.get(f"val/{self.task_spec.monitor}")
        if monitored is not None:  # the task's own selection metric, for early stopping (higher is better)
            self.log("val/monitor", monitored)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        if self.task_spec.per_frame:
            self._test_recording(batch)
        else:
            self._shared_step(batch, "test")

    def _test_recording(self, batch: dict[str, Tensor]) -> None:
        """One whole test recording (a batch of one): in overlapping windows at bounded memory, scored as
        a whole; its frame probabilities and targets are written to ``test_predictions/<id>.npz``."""
        encoder, audio = self.encoder, batch["waveforms"]
        if encoder.sample_rate != SAMPLE_RATE:  # windows start on the encoder's own frames, at its own rate
            audio = torchaudio.functional.resample(audio.float(), SAMPLE_RATE, encoder.sample_rate)

        def outputs_of(pieces: Tensor) -> Tensor:
            return self.head.classify(self.head_features(pieces, sample_rate=encoder.sample_rate))

        hp = self.hparams
        outputs = run_in_windows(outputs_of, audio, encoder, hp.test_window_seconds, hp.test_context_seconds,
                                 hp.test_windows_per_forward)  # (1, T, K)
        _, targets = self._score(batch, outputs, "test")
        probabilities = torch.sigmoid(outputs.float())[0].cpu().numpy()  # (T, K)
        times = encoder.frame_times(probabilities.shape[0]).numpy()
        notes = batch["notes"][:, 1:].cpu().numpy().astype(np.float64)  # (N, 4) of this one recording
        self._recording_scores.append(self.task_spec.recording_scores(probabilities, times, 1 / encoder.frame_rate,
                                                                      notes))
        self._recordings.append(write_recording_predictions(self, batch["recording"][0], probabilities,
                                                            targets[0].cpu().numpy()))

    def on_test_epoch_start(self) -> None:
        if self.test_confusion is not None:
            self.test_confusion.reset()
        self._recording_scores, self._recordings = [], []
        self._open_store("test")

    def on_test_epoch_end(self) -> None:
        self._finish_store("test")
        self.recording_metrics.update(self._score_files("test"))
        for name in sorted({key for scores in self._recording_scores for key in scores}):
            value = float(np.mean([scores[name] for scores in self._recording_scores if name in scores]))
            self.recording_metrics[f"test/{name}"] = value  # a mean over the test recordings
            self.log(f"test/{name}", value, sync_dist=True)
        confusion = self.test_confusion.compute().cpu() if self.test_confusion is not None else None
        report_test_results(self, confusion, self._recordings)

    @property
    def results_dir(self) -> Path:
        root = self.hparams.results_dir or (self.trainer.default_root_dir if self._trainer else ".")
        return Path(root)

    def test_summary(self) -> dict[str, Any]:
        """What ``test_metrics.json`` holds: enough to place the run in the results table."""
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test/")}
        metrics.update(self.recording_metrics)
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
