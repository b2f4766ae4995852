"""The one place that opens checkpoint files: read once, tell the kind, hand out config and weights.

Our checkpoints are Lightning checkpoints of :class:`~lightning_w2v.tasks.PretrainModule`
(kind ``pretrain``: the whole pre-training model, quantizer included) or
:class:`~lightning_w2v.tasks.FinetuneModule` (kind ``finetune``: encoder + head). Since 0.2
each carries ``checkpoint["lightning_w2v"] = {"kind", "version"}``; older ones are told apart
by their hyper-parameters and weight names. The encoder's architecture is stored beside the
weights (``encoder_architecture``; for the wav2vec 2.0 family also its model config,
``wav2vec2_config``, and for pre-training the objective, ``pretraining_objective``), so any
consumer can rebuild the model without the run's YAML. Up to 0.2 the model config and the
objective were one dict under ``wav2vec2_config``; both are read from it.

Files are opened with ``mmap=True`` where torch allows it (zip-format files, all that torch
>= 1.6 writes): tensors are then read from disk only when used, so reading a W&B run id or a
config from a multi-GB checkpoint costs almost nothing. Our checkpoints hold plain Python
objects in their hyper-parameters, so they are unpickled with ``weights_only=False``: open
only checkpoints you trust, as with any pickle.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import CheckpointError
from ..models.config import PretrainingObjective, Wav2Vec2Config, preset_config, preset_objective, split_overrides

OUR_KINDS = ("pretrain", "finetune", "encoder")  # "encoder": encoder weights and config only, not resumable
STAMP_KEY = "lightning_w2v"  # {"kind": ..., "version": ...} in every checkpoint we write
CONFIG_KEY = "wav2vec2_config"
OBJECTIVE_KEY = "pretraining_objective"
ARCHITECTURE_KEY = "encoder_architecture"
WANDB_RUN_ID_KEY = "wandb_run_id"
KIND_NAMES = {"pretrain": "a pre-training checkpoint (PretrainModule)",
              "finetune": "a fine-tuning checkpoint (FinetuneModule)",
              "encoder": "an encoder-only checkpoint (no training state)"}
# Where the backbone's weights sit in each kind.
BACKBONE_PREFIXES = {"pretrain": ("model.backbone.",), "finetune": ("encoder.",),
                     "encoder": ("encoder.", "backbone.", "model.backbone.")}


def load_file(path: str | os.PathLike, key: str = "checkpoint") -> Any:
    """``torch.load`` on the CPU, memory-mapped when the format allows; errors name ``key`` and the file."""
    file = Path(str(path)).expanduser()
    if file.is_dir():
        raise CheckpointError(f"{key}={file} is a folder, not a checkpoint file; pass the .ckpt/.pt file")
    if not file.is_file():
        raise CheckpointError(f"{key}={file} does not exist; pass an existing checkpoint file")
    try:
        try:
            return torch.load(file, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError as error:  # not a zip file (legacy torch format): mmap is impossible
            if "mmap" not in str(error) and "zip" not in str(error).lower():
                raise
            return torch.load(file, map_location="cpu", weights_only=False)
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 - pickle, zip and EOF errors all mean the same here
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{key}={file} is not a readable checkpoint ({first_line}); it may be truncated "
                              "or corrupt: copy it again, or pick an earlier checkpoint") from None


@dataclass
class Checkpoint:
    """One of our checkpoints, read once."""

    path: Path
    kind: str  # "pretrain" | "finetune"
    content: dict[str, Any]

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.content.get("state_dict", {})

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.content.get("hyper_parameters") or {})

    @property
    def task(self) -> str | None:
        return self.hparams.get("task")

    @property
    def policy(self) -> str | None:
        return self.hparams.get("policy")

    @property
    def global_step(self) -> int:
        return int(self.content.get("global_step", 0))

    @property
    def wandb_run_id(self) -> str | None:
        return self.content.get(WANDB_RUN_ID_KEY)

    @property
    def description(self) -> str:
        """E.g. 'a fine-tuning checkpoint (FinetuneModule) for task pitch, policy FE'."""
        text = KIND_NAMES[self.kind]
        if self.kind == "finetune":
            text += f" for task {self.task}, policy {self.policy}"
        return text

    def config(self, preset: str | None = None) -> Wav2Vec2Config:
        """The stored model config (``preset`` overrides it, e.g. for a checkpoint without one)."""
        if preset:
            return preset_config(preset)
        if CONFIG_KEY in self.content:
            return Wav2Vec2Config.from_dict(self.content[CONFIG_KEY])
        hparams = self.hparams
        if "preset" in hparams:
            model, _ = split_overrides(hparams.get("model_overrides"))
            return preset_config(hparams["preset"], **model)
        raise CheckpointError(f"{self.path} holds no wav2vec2 config: pass encoder.preset to say which "
                              "architecture it is")

    def objective(self) -> PretrainingObjective:
        """The stored pre-training objective (0.1 and 0.2 kept it in the model config's dict)."""
        for key in (OBJECTIVE_KEY, CONFIG_KEY):
            if key in self.content:
                return PretrainingObjective.from_dict(self.content[key])
        hparams = self.hparams
        _, objective = split_overrides(hparams.get("model_overrides"))
        return preset_objective(hparams.get("preset", "base"), **objective)

    def architecture(self) -> dict[str, Any]:
        """What the stored encoder's weights need (see ``Encoder.architecture``)."""
        if ARCHITECTURE_KEY in self.content:
            return dict(self.content[ARCHITECTURE_KEY])
        return self.config().to_dict()

    def weights(self, prefix: str) -> dict[str, torch.Tensor]:
        """The entries of the state dict under ``prefix`` (e.g. ``"model."``), prefix removed."""
        return {k[len(prefix):]: v for k, v in self.state_dict.items() if k.startswith(prefix)}

    def backbone_weights(self) -> dict[str, torch.Tensor]:
        """The encoder's (:class:`Wav2Vec2Backbone`) weights, wherever this kind keeps them."""
        for prefix in BACKBONE_PREFIXES[self.kind]:
            weights = self.weights(prefix)
            if weights:
                return weights
        return {}


def _kind_of(content: dict[str, Any]) -> str | None:
    stamp = content.get(STAMP_KEY)
    if isinstance(stamp, dict) and stamp.get("kind") in OUR_KINDS:
        return stamp["kind"]
    hparams = content.get("hyper_parameters") or {}
    class_path = str(hparams.get("_class_path", ""))
    if class_path.endswith("PretrainModule"):
        return "pretrain"
    if class_path.endswith("FinetuneModule"):
        return "finetune"
    state = content.get("state_dict") or {}
    if "model.quantizer.codevectors" in state:
        return "pretrain"
    if any(k.startswith("encoder.") for k in state) and any(k.startswith("head.") for k in state):
        return "finetune"
    if CONFIG_KEY in content and any(k.startswith(BACKBONE_PREFIXES["encoder"]) for k in state):
        return "encoder"
    return None


def read_checkpoint(path: str | os.PathLike, key: str = "checkpoint") -> Checkpoint:
    """Open one of our checkpoints; :class:`CheckpointError` if it is missing, unreadable or not ours."""
    content = load_file(path, key)
    kind = _kind_of(content) if isinstance(content, dict) else None
    if kind is None:
        raise CheckpointError(f"{key}={path} is not a lightning-w2v checkpoint (no PretrainModule or "
                              "FinetuneModule state in it); for a transformers, torchaudio or fairseq model "
                              "set encoder.source accordingly")
    return Checkpoint(Path(str(path)).expanduser(), kind, content)


def stamp(checkpoint: dict[str, Any], kind: str, architecture: dict[str, Any],
          config: Wav2Vec2Config | None = None, objective: PretrainingObjective | None = None) -> None:
    """What our modules add to every checkpoint they save: the kind and the encoder's architecture, and
    for the wav2vec 2.0 family its model config (and pre-training's objective)."""
    checkpoint[STAMP_KEY] = {"kind": kind, "version": __version__}
    checkpoint[ARCHITECTURE_KEY] = architecture
    if config is not None:
        checkpoint[CONFIG_KEY] = config.to_dict()
    if objective is not None:
        checkpoint[OBJECTIVE_KEY] = objective.to_dict()
