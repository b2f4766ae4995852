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
from .reader import Checkpoint, load_file, read_checkpoint

log = logging.getLogger(__name__)
SOURCES = ("checkpoint", "torchaudio", "huggingface", "fairseq", "random")
KEY = "model.init_args.encoder.path"


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
        if self.label:
            return self.label
        return {"checkpoint": "music", "torchaudio": "speech", "random": "random"}.get(self.source, self.source)


def load_encoder(spec: EncoderSpec, key: str = KEY) -> Wav2Vec2Backbone:
    """The backbone ``spec`` names; :class:`CheckpointError` naming ``key`` if it cannot be read."""
    if spec.source == "random":
        return Wav2Vec2Backbone(preset_config(spec.preset or "base"))
    if spec.source == "checkpoint":
        return backbone_from_checkpoint(spec.path, spec.preset, key)
    if spec.source == "torchaudio":
        return backbone_from_torchaudio_bundle(spec.path)
    if spec.source == "huggingface":
        return interop.backbone_from_huggingface(huggingface_model(spec.path, "Wav2Vec2Model"))
    return interop.backbone_from_fairseq(load_file(spec.path, key))


# transformers model types whose every hidden state torchaudio's importer reproduces exactly
# (tests/test_encoder_families.py). WavLM's relative position bias and data2vec-audio's layers are
# not carried through this backbone yet: they are refused rather than loaded wrongly.
SUPPORTED_HF_MODEL_TYPES = ("wav2vec2", "hubert")
# Weights of pre-training or CTC heads that an encoder-only load leaves out on purpose
HEAD_PREFIXES = ("quantizer.", "project_q.", "project_hid.", "lm_head.", "final_proj.", "label_embeddings_concat")


def huggingface_model(path: str | Path, class_name: str = "Wav2Vec2Model"):
    """A transformers model from a local directory (or a hub id, where a network exists), loaded
    strictly: a model type we do not reproduce exactly, or any weight of ``class_name`` that the
    directory does not hold (it would be freshly initialised), is a :class:`CheckpointError`."""
    import transformers  # optional: only transformers sources need it

    try:
        model_type = transformers.AutoConfig.from_pretrained(str(path)).model_type
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{KEY}={path} is not a transformers model directory or hub id ({error})") from None
    if model_type not in SUPPORTED_HF_MODEL_TYPES:
        raise CheckpointError(f"{KEY}={path} is a transformers {model_type!r} model; this version loads "
                              f"{' and '.join(SUPPORTED_HF_MODEL_TYPES)} models exactly and refuses others "
                              "rather than give wrong features")
    try:
        model, info = getattr(transformers, class_name).from_pretrained(str(path), output_loading_info=True)
    except OSError as error:
        raise CheckpointError(f"{KEY}={path} is not a transformers model directory or hub id ({error})") from None
    missing = sorted(info["missing_keys"])
    if class_name == "Wav2Vec2ForPreTraining":  # a model without its pre-training head: the caller checks
        missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith(HEAD_PREFIXES))
    mismatched = sorted(str(k[0]) if isinstance(k, (tuple, list)) else str(k) for k in info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        parts = [f"{label} {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
                 if keys]
        raise CheckpointError(f"{KEY}={path}: its weights do not load into {class_name} exactly "
                              f"({'; '.join(parts)}); a checkpoint is used only when every weight loads")
    return model


def huggingface_has_quantizer(path: str | Path) -> bool:
    """Whether a transformers model directory / hub id holds pre-training head weights."""
    import transformers  # optional: only transformers sources need it

    try:
        _, info = transformers.Wav2Vec2ForPreTraining.from_pretrained(str(path), output_loading_info=True)
    except (OSError, ValueError):
        return False
    return not any(key.startswith("quantizer.") for key in info["missing_keys"])


def backbone_from_torchaudio_bundle(name: str) -> Wav2Vec2Backbone:
    """``torchaudio.pipelines.<name>`` (e.g. WAV2VEC2_BASE, the speech baseline) -> backbone.

    torchaudio downloads the bundle's weights on first use (torch hub cache).
    """
    bundle = getattr(torchaudio.pipelines, str(name), None)
    if bundle is None or not hasattr(bundle, "get_model"):
        raise ConfigError(f"{KEY}={name!r}: torchaudio.pipelines has no wav2vec 2.0 bundle of that name "
                          "(try WAV2VEC2_BASE)")
    if "encoder_num_buckets" in bundle._params:  # WavLM: its relative position bias is not carried yet
        raise ConfigError(f"{KEY}={name!r} is a WavLM bundle; this version loads wav2vec 2.0 and HuBERT bundles "
                          "exactly and refuses WavLM rather than give wrong features")
    return Wav2Vec2Backbone(interop.config_from_torchaudio(bundle._params), bundle.get_model())


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
    checkpoint = read_checkpoint(path, key)
    if checkpoint.kind != "pretrain":
        raise CheckpointError(f"{key}={checkpoint.path} is {checkpoint.description}; this needs a pre-training "
                              "checkpoint (the quantizer is only there)")
    return _pretraining_model(checkpoint).eval()


def _pretraining_model(checkpoint: Checkpoint) -> Wav2Vec2ForPretraining:
    model = Wav2Vec2ForPretraining(checkpoint.config())
    model.load_state_dict(checkpoint.weights("model."))
    return model


def num_encoder_layers(path: str | Path, key: str = "--ckpt") -> int:
    """Transformer layers L of the encoder in one of our checkpoints (pre-training or fine-tuning)."""
    return int(read_checkpoint(path, key).config().num_layers)


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
        model = interop.from_huggingface_pretraining(huggingface_model(spec.path, "Wav2Vec2ForPreTraining")).train()
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
