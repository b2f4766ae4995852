"""Where a fine-tuning encoder comes from: our checkpoint, torchaudio, transformers, fairseq, random."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import logging

import torch

from .backbone import Wav2Vec2Backbone
from .config import OBJECTIVE_FIELDS, Wav2Vec2Config, preset_config

log = logging.getLogger(__name__)
SOURCES = ("checkpoint", "torchaudio", "huggingface", "fairseq", "random")
BACKBONE_PREFIXES = ("model.backbone.", "backbone.", "encoder.")  # pretrain ckpt, bare model, finetune ckpt


@dataclass
class EncoderSpec:
    """Which pre-trained encoder to fine-tune.

    source: ``checkpoint`` (ours: a pre-training .ckpt), ``torchaudio`` (a pipeline bundle
        name, e.g. WAV2VEC2_BASE, the paper's speech baseline), ``huggingface`` (a
        transformers model directory or hub id), ``fairseq`` (a wav2vec 2.0 .pt), or
        ``random`` (untrained, an ablation).
    path: the checkpoint file, bundle name, directory/hub id, or .pt file.
    preset: architecture for ``random``; for ``checkpoint`` an optional check that the
        checkpoint has this shape (by default its own stored config is used).
    label: how the encoder is named in results tables (default: derived from the source).
    """

    source: str = "checkpoint"
    path: str | None = None
    preset: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"encoder.source={self.source!r}: choose one of {', '.join(SOURCES)}")
        if self.source != "random" and not self.path:
            raise ValueError(f"encoder.path is required for encoder.source={self.source!r}")

    @property
    def display_label(self) -> str:
        if self.label:
            return self.label
        return {"checkpoint": "music", "torchaudio": "speech", "random": "random"}.get(self.source, self.source)


def load_encoder(spec: EncoderSpec) -> Wav2Vec2Backbone:
    from . import interop

    if spec.source == "random":
        return Wav2Vec2Backbone(preset_config(spec.preset or "base"))
    if spec.source == "checkpoint":
        return backbone_from_checkpoint(spec.path, spec.preset)
    if spec.source == "torchaudio":
        return interop.backbone_from_torchaudio_bundle(spec.path)
    if spec.source == "huggingface":
        return interop.backbone_from_huggingface(spec.path)
    return interop.backbone_from_fairseq(_existing(spec.path))


def _existing(path: str | None) -> Path:
    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"encoder checkpoint {file} does not exist; pass an existing file as encoder.path")
    return file


def read_checkpoint_config(checkpoint: dict, file: Path) -> Wav2Vec2Config:
    if "wav2vec2_config" in checkpoint:
        return Wav2Vec2Config.from_dict(checkpoint["wav2vec2_config"])
    hparams = checkpoint.get("hyper_parameters", {})
    if "preset" in hparams:
        return preset_config(hparams["preset"], **(hparams.get("model_overrides") or {}))
    raise ValueError(f"{file} holds no wav2vec2 config: pass encoder.preset to say which architecture it is")


def backbone_from_checkpoint(path: str | Path | None, preset: str | None = None) -> Wav2Vec2Backbone:
    """Backbone weights from a pre-training (or fine-tuning) checkpoint of this project."""
    file = _existing(path)
    checkpoint = torch.load(file, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint)
    config = preset_config(preset) if preset else read_checkpoint_config(checkpoint, file)
    backbone = Wav2Vec2Backbone(config)
    for prefix in BACKBONE_PREFIXES:
        weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            break
    else:
        raise ValueError(f"{file} has no encoder weights (looked for keys starting with {BACKBONE_PREFIXES})")
    expected = backbone.state_dict()
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in weights.items() if k in expected and v.shape != expected[k].shape]
    missing = sorted(set(expected) - set(weights))
    if mismatched or missing:
        detail = "; ".join(mismatched[:3] + [f"missing {k}" for k in missing[:3]])
        hint = f"the preset {preset!r}" if preset else "its stored config"
        raise ValueError(f"{file} does not fit {hint}: {detail}. Use the preset the checkpoint was trained with.")
    backbone.load_state_dict({k: v for k, v in weights.items() if k in expected})
    return backbone


def load_pretraining_model(path: str | Path):
    """Our pre-training checkpoint -> ``Wav2Vec2ForPretraining`` (quantizer included), eval mode."""
    from .wav2vec2 import Wav2Vec2ForPretraining

    file = _existing(path)
    checkpoint = torch.load(file, map_location="cpu", weights_only=False)
    weights = _pretraining_weights(checkpoint)
    if weights is None:
        raise ValueError(f"{file} is not a pre-training checkpoint of this project (no quantizer weights)")
    model = Wav2Vec2ForPretraining(read_checkpoint_config(checkpoint, file))
    model.load_state_dict(weights)
    return model.eval()


def _pretraining_weights(checkpoint: dict) -> dict | None:
    """The ``Wav2Vec2ForPretraining`` state dict inside one of our checkpoints, or None."""
    state = checkpoint.get("state_dict", checkpoint)
    weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    return weights if "quantizer.codevectors" in weights else None


def _huggingface_has_quantizer(path: str) -> bool:
    """Whether a transformers model directory / hub id holds pre-training head weights."""
    import transformers

    try:
        _, info = transformers.Wav2Vec2ForPreTraining.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError):
        return False
    return not any(key.startswith("quantizer.") for key in info["missing_keys"])


def continued_pretraining_model(spec: EncoderSpec, overrides: dict | None = None):
    """A ``Wav2Vec2ForPretraining`` to continue pre-training from ``spec`` (weights only).

    Our pre-training checkpoints and transformers pre-training models bring their quantizer
    and projections; any other source (an exported encoder, a torchaudio bundle, a fairseq
    encoder, a fine-tuned checkpoint) gets them freshly initialised, with a warning.
    ``overrides`` changes objective settings (masking, negatives, loss weights) only.
    """
    from .wav2vec2 import Wav2Vec2ForPretraining

    model = None
    if spec.source == "checkpoint":
        file = _existing(spec.path)
        checkpoint = torch.load(file, map_location="cpu", weights_only=False)  # read once
        weights = _pretraining_weights(checkpoint)
        if weights is not None:
            model = Wav2Vec2ForPretraining(read_checkpoint_config(checkpoint, file))
            model.load_state_dict(weights)
    elif spec.source == "huggingface" and _huggingface_has_quantizer(spec.path):
        model = Wav2Vec2ForPretraining.from_huggingface(spec.path).train()
    if model is None:
        backbone = load_encoder(spec)
        log.warning("%s %s has no quantizer: continuing pre-training with a freshly initialised "
                    "quantizer, project_q, final_proj and mask embedding", spec.source, spec.path)
        model = Wav2Vec2ForPretraining(backbone.config, backbone=backbone)
    if overrides:
        fixed = sorted(set(overrides) - OBJECTIVE_FIELDS)
        if fixed:
            raise ValueError(f"model.model_overrides {fixed} change the architecture of {spec.path}; "
                             f"when continuing pre-training only {sorted(OBJECTIVE_FIELDS)} may change")
        config = model.config.with_overrides(**overrides)
        model.config = model.backbone.config = config
        model.backbone.layerdrop = config.layerdrop
    return model
