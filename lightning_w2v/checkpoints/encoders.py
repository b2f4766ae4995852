"""Where an encoder comes from: our checkpoint, a torchaudio bundle, transformers, fairseq, or random.

:class:`EncoderSpec` names a source (what fine-tuning, continued pre-training, HEAR, the
probes and the analyses take); :func:`load_encoder` turns it into a
:class:`~lightning_w2v.models.Wav2Vec2Backbone`. Every file is opened through
:mod:`.reader`, once; the conversions themselves are pure functions in
:mod:`lightning_w2v.models.interop`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torchaudio.pipelines

from ..errors import CheckpointError, ConfigError
from ..models import interop
from ..models.backbone import Wav2Vec2Backbone
from ..models.config import OBJECTIVE_FIELDS, preset_config
from ..models.wav2vec2 import Wav2Vec2ForPretraining
from .huggingface import (
    KEY,
    backbone_from_huggingface,
    huggingface_config_dict,
    huggingface_has_quantizer,
    huggingface_input_convention,
    huggingface_model,
)
from .reader import Checkpoint, load_file, read_checkpoint

log = logging.getLogger(__name__)
SOURCES = ("checkpoint", "torchaudio", "huggingface", "fairseq", "random")


@dataclass
class EncoderSpec:
    """Which pre-trained encoder to fine-tune.

    source: ``checkpoint`` (ours: a pre-training or fine-tuning .ckpt), ``torchaudio`` (a
        pipeline bundle name, e.g. WAV2VEC2_BASE, the paper's speech baseline),
        ``huggingface`` (a transformers model directory or hub id), ``fairseq`` (a wav2vec 2.0
        .pt), or ``random`` (untrained, an ablation).
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
            raise ConfigError(f"model.init_args.encoder.source={self.source!r}: choose one of {', '.join(SOURCES)}")
        if self.source != "random" and not self.path:
            raise ConfigError(f"set --{KEY} (required for encoder.source={self.source!r})")

    @property
    def display_label(self) -> str:
        """The row name in results tables: ``label``, else the model's own name (the paper's
        ``music`` / ``speech`` / ``random`` for ours, WAV2VEC2_BASE and untrained encoders)."""
        if self.label:
            return self.label
        if self.source == "checkpoint":
            return "music"
        if self.source == "random":
            return "random"
        if self.source == "torchaudio":
            return "speech" if self.path == "WAV2VEC2_BASE" else str(self.path).lower()
        name = Path(str(self.path).rstrip("/")).name  # a model folder, a hub id's name or a .pt file
        return Path(name).stem if self.source == "fairseq" else name


def load_encoder(spec: EncoderSpec, key: str = KEY) -> Wav2Vec2Backbone:
    """The backbone ``spec`` names; :class:`CheckpointError` naming ``key`` if it cannot be read."""
    if spec.source == "random":
        return Wav2Vec2Backbone(preset_config(spec.preset or "base"))
    if spec.source == "checkpoint":
        return backbone_from_checkpoint(spec.path, spec.preset, key)
    if spec.source == "torchaudio":
        return backbone_from_torchaudio_bundle(spec.path)
    if spec.source == "huggingface":
        return backbone_from_huggingface(spec.path)
    return interop.backbone_from_fairseq(load_file(spec.path, key))


# The torchaudio pipeline bundles of the families the backbone reproduces (wav2vec 2.0, XLS-R, HuBERT, WavLM)
TORCHAUDIO_MODEL_TYPES = ("Wav2Vec2", "HuBERT", "WavLM")


def backbone_from_torchaudio_bundle(name: str) -> Wav2Vec2Backbone:
    """``torchaudio.pipelines.<name>`` (WAV2VEC2_BASE, the speech baseline; HUBERT_*, WAVLM_*,
    WAV2VEC2_XLSR*, ...) -> backbone, with the bundle's sample rate and waveform normalisation.

    torchaudio downloads the bundle's weights on first use (torch hub cache).
    """
    bundle = torchaudio_bundle(name)
    return interop.backbone_from_torchaudio(bundle.get_model(), bundle._params, bundle.sample_rate,
                                           bundle._normalize_waveform)


def torchaudio_bundle(name: str):
    """The pipeline bundle ``name``, checked before anything is downloaded."""
    bundle = getattr(torchaudio.pipelines, str(name), None)
    if bundle is None or not hasattr(bundle, "get_model") or not hasattr(bundle, "_params"):
        raise ConfigError(f"{KEY}={name!r}: torchaudio.pipelines has no wav2vec 2.0, HuBERT or WavLM bundle of "
                          "that name (try WAV2VEC2_BASE, HUBERT_BASE or WAVLM_BASE_PLUS)")
    if getattr(bundle, "_model_type", "Wav2Vec2") not in TORCHAUDIO_MODEL_TYPES:
        raise ConfigError(f"{KEY}={name!r} is a torchaudio {bundle._model_type} bundle; the encoder loads "
                          f"{', '.join(TORCHAUDIO_MODEL_TYPES)} bundles")
    return bundle


def backbone_from_checkpoint(path: str | Path | Checkpoint, preset: str | None = None,
                             key: str = KEY) -> Wav2Vec2Backbone:
    """Backbone weights from one of our pre-training or fine-tuning checkpoints (strict)."""
    checkpoint = path if isinstance(path, Checkpoint) else read_checkpoint(path, key)
    config = checkpoint.config(preset)
    backbone = Wav2Vec2Backbone(config)
    weights = checkpoint.backbone_weights()
    expected = backbone.state_dict()
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in weights.items() if k in expected and v.shape != expected[k].shape]
    missing = sorted(set(expected) - set(weights))
    if mismatched or missing:
        detail = "; ".join(mismatched[:3] + [f"missing {k}" for k in missing[:3]])
        fits = f"the preset {preset!r}" if preset else "its stored config"
        raise CheckpointError(f"{key}={checkpoint.path} does not fit {fits}: {detail}; use the preset the "
                              "checkpoint was trained with")
    backbone.load_state_dict({k: v for k, v in weights.items() if k in expected})
    return backbone


def load_pretraining_model(path: str | Path, key: str = "checkpoint") -> Wav2Vec2ForPretraining:
    """Our pre-training checkpoint -> ``Wav2Vec2ForPretraining`` (quantizer included), eval mode."""
    if Path(str(path)).expanduser().is_dir():  # a transformers folder, HuBERT, WavLM, MERT, ...: no codebook
        raise CheckpointError(f"{key}={path} is a folder; this needs one of our pre-training checkpoints (.ckpt), "
                              "the only encoders here with a quantizer (codebooks)")
    checkpoint = read_checkpoint(path, key)
    if checkpoint.kind != "pretrain":
        raise CheckpointError(f"{key}={checkpoint.path} is {checkpoint.description}; this needs a pre-training "
                              "checkpoint (the quantizer is only there)")
    return _pretraining_model(checkpoint).eval()


def _pretraining_model(checkpoint: Checkpoint) -> Wav2Vec2ForPretraining:
    model = Wav2Vec2ForPretraining(checkpoint.config())
    model.load_state_dict(checkpoint.weights("model."))
    return model


def num_encoder_layers(path: str | Path, key: str = "--ckpt", source: str = "checkpoint") -> int:
    """Transformer layers L of the encoder ``path`` names, read from its config without building it:
    one of our checkpoints (pre-training or fine-tuning), a transformers folder, a bundle, a fairseq .pt."""
    if source == "checkpoint":
        return int(read_checkpoint(path, key).config().num_layers)
    if source == "huggingface":
        return int(huggingface_config_dict(path)["num_hidden_layers"])
    if source == "torchaudio":
        return int(torchaudio_bundle(path)._params["encoder_num_layers"])
    return interop.config_from_fairseq(load_file(path, key)).num_layers


def continued_pretraining_model(spec: EncoderSpec, overrides: dict | None = None) -> Wav2Vec2ForPretraining:
    """A ``Wav2Vec2ForPretraining`` to continue pre-training from ``spec`` (weights only).

    Our pre-training checkpoints and transformers pre-training models bring their quantizer
    and projections; any other source (an exported encoder, a torchaudio bundle, a fairseq
    encoder, a fine-tuned checkpoint) gets them freshly initialised, with a warning.
    ``overrides`` changes objective settings (masking, negatives, loss weights) only.
    """
    key = "model.init_args.init_from.path"
    model = None
    if spec.source == "checkpoint":
        checkpoint = read_checkpoint(spec.path, key)  # read once
        if checkpoint.kind == "pretrain":
            model = _pretraining_model(checkpoint)
        else:
            backbone = backbone_from_checkpoint(checkpoint, spec.preset, key)
    elif spec.source == "huggingface" and huggingface_has_quantizer(spec.path):
        hf_model = huggingface_model(spec.path, "Wav2Vec2ForPreTraining")
        convention = huggingface_input_convention(spec.path, huggingface_config_dict(spec.path))
        model = interop.from_huggingface_pretraining(hf_model, *convention).train()
    if model is None:
        if spec.source != "checkpoint":
            backbone = load_encoder(spec, key)
        log.warning("%s %s has no quantizer: continuing pre-training with a freshly initialised "
                    "quantizer, project_q, final_proj and mask embedding", spec.source, spec.path)
        model = Wav2Vec2ForPretraining(backbone.config, backbone=backbone)
    if overrides:
        fixed = sorted(set(overrides) - OBJECTIVE_FIELDS)
        if fixed:
            raise ConfigError(f"model.init_args.model_overrides {fixed} change the architecture of {spec.path}; "
                              f"when continuing pre-training only {sorted(OBJECTIVE_FIELDS)} may change")
        config = model.config.with_overrides(**overrides)
        model.config = model.backbone.config = config
        model.backbone.layerdrop = config.layerdrop
    return model
