"""Export our wav2vec 2.0 to transformers and torchaudio formats.

``export_to_transformers`` writes a directory that both
``transformers.Wav2Vec2ForPreTraining.from_pretrained`` (quantizer and projections included)
and ``transformers.Wav2Vec2Model.from_pretrained`` load: the pre-training weights are
stored under the ``wav2vec2.`` prefix, which ``Wav2Vec2Model`` strips (it then ignores the
quantizer / projections as unexpected keys). Files:

    config.json               transformers Wav2Vec2Config (+ a ``lightning_w2v`` block holding
                              our full config and the Gumbel temperature, so a round trip
                              restores what transformers has no field for)
    model.safetensors         the weights
    preprocessor_config.json  Wav2Vec2FeatureExtractor: the encoder's input convention (ours:
                              16 kHz, no normalisation, as BASE was pre-trained), attention
                              masks only for layer-norm extractors

Weight mapping: one table, :data:`~lightning_w2v.models.interop.HF_BACKBONE_MODULES` (the
backbone's modules: CNN, feature projection, Transformer) and
:data:`~lightning_w2v.models.interop.HF_PRETRAINING_HEAD` (mask embedding, quantizer,
``final_proj`` as ``project_hid``, ``project_q``), which the import reads in reverse.

The positional convolution's weight norm is named ``parametrizations.weight.original0/1``
in current torch and ``weight_g/weight_v`` in old checkpoints. We never rename keys by
hand: the weights go module by module into a freshly built transformers model with strict
``load_state_dict`` (torch's weight-norm hook accepts either naming), and transformers'
own ``save_pretrained`` writes the file, so the names are whatever its ``from_pretrained``
expects.

``export_torchaudio_state_dict`` writes a ``torch.save`` state dict for
``torchaudio.models.wav2vec2_model(**torchaudio_kwargs(config), aux_num_out=None)`` (no CTC
head; torchaudio requires the argument), with its arguments in ``<path>.json``.

Command line: ``lightning-w2v export --ckpt X --to DIR [--torchaudio PATH]``.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..files import atomic_write_text, claim_folder
from ..files.atomic import atomic_save
from ..files.ownership import only_names
from ..models.backbone import Wav2Vec2Backbone, build_torchaudio_model, torchaudio_kwargs
from ..models.config import PretrainingObjective, Wav2Vec2Config
from ..models.interop import (
    HF_BACKBONE_MODULES,
    HF_PRETRAINING_HEAD,
    backbone_from_huggingface,
    config_to_huggingface,
    copy_named_weights,
    from_huggingface_pretraining,
)
from ..models.wav2vec2 import Wav2Vec2ForPretraining
from .reader import read_checkpoint

log = logging.getLogger(__name__)

CONFIG_KEY = "lightning_w2v"  # our extra block inside the transformers config.json
# What an export folder of 0.1 (before folder markers) held: such folders are adopted.
EXPORT_FILE_NAMES = ("config.json", "model.safetensors", "preprocessor_config.json", "*.pt", "*.pt.json")


# --------------------------------------------------------------------------- loading
def resolve_model(ckpt_or_model: Any) -> nn.Module:
    """A checkpoint path or module -> ``Wav2Vec2ForPretraining`` or ``Wav2Vec2Backbone``.

    Accepts our pre-training checkpoint (full model, quantizer included), a fine-tuning
    checkpoint or any checkpoint with only encoder weights (backbone only), a
    ``Wav2Vec2ForPretraining``, a ``Wav2Vec2Backbone``, or a module holding one as
    ``.model`` (``PretrainModule``) or ``.encoder`` (``FinetuneModule``).
    """
    if isinstance(ckpt_or_model, (Wav2Vec2ForPretraining, Wav2Vec2Backbone)):
        return ckpt_or_model
    if isinstance(ckpt_or_model, nn.Module):
        for attr in ("model", "encoder", "backbone"):
            inner = getattr(ckpt_or_model, attr, None)
            if isinstance(inner, (Wav2Vec2ForPretraining, Wav2Vec2Backbone)):
                return inner
        raise TypeError(f"cannot export a {type(ckpt_or_model).__name__}: expected a wav2vec 2.0 model")
    from ..encoders.sources.checkpoint import backbone_from_checkpoint, pretraining_model_of

    checkpoint = read_checkpoint(ckpt_or_model, "--ckpt")  # read once, whatever its kind
    if checkpoint.kind == "pretrain":
        return pretraining_model_of(checkpoint).eval()
    return backbone_from_checkpoint(checkpoint, key="--ckpt")


def _split(model: nn.Module) -> tuple[Wav2Vec2Backbone, nn.Module | None]:
    backbone = getattr(model, "backbone", model)
    if backbone.config.family != "wav2vec2":  # e.g. a model fine-tuned from WavLM or data2vec-audio
        raise CheckpointError(f"this encoder is a {backbone.config.family} model; export writes wav2vec 2.0 "
                              "(and HuBERT-shaped) models only, and its original checkpoint is already in a "
                              "standard format")
    return backbone, (model if backbone is not model else None)


# --------------------------------------------------------------------------- transformers
def to_transformers_model(ckpt_or_model: Any) -> nn.Module:
    """Our model -> an in-memory transformers model with the same weights (eval mode).

    ``Wav2Vec2ForPreTraining`` when the source has the pre-training head, else
    ``Wav2Vec2Model``. Every module is loaded with ``strict=True``.
    """
    import transformers  # optional: the transformers extra

    backbone, full = _split(resolve_model(ckpt_or_model))
    config: Wav2Vec2Config = backbone.config
    objective = full.objective if full is not None else None
    hf_config = config_to_huggingface(config, objective)
    extra: dict[str, Any] = {"config": config.to_dict()}
    if full is not None:
        extra["objective"] = objective.to_dict()
        extra["temperature"] = float(full.quantizer.temperature)
    setattr(hf_config, CONFIG_KEY, extra)

    if full is not None:
        hf = transformers.Wav2Vec2ForPreTraining(hf_config)
        encoder = hf.wav2vec2
    else:
        hf = encoder = transformers.Wav2Vec2Model(hf_config)
    copy_named_weights(backbone, encoder, HF_BACKBONE_MODULES)
    if full is not None:
        copy_named_weights(full, hf, HF_PRETRAINING_HEAD)
        hf.set_gumbel_temperature(float(full.quantizer.temperature))
    return hf.eval()


def _feature_extractor(config: Wav2Vec2Config):
    from transformers import Wav2Vec2FeatureExtractor  # optional: the transformers extra

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=config.sample_rate,
        padding_value=0.0,
        do_normalize=config.normalize_waveform,  # ours: raw audio, as BASE pre-training (fairseq normalize=False)
        # group-norm extractors must see zero-padded batches without a mask (as fairseq)
        return_attention_mask=config.extractor_mode == "layer_norm",
    )


def export_to_transformers(ckpt_or_model: Any, out_dir: str | os.PathLike) -> Path:
    """Write a transformers model directory; returns it.

    ``ckpt_or_model``: our checkpoint path or model (see :func:`resolve_model`). The directory
    loads with ``Wav2Vec2ForPreTraining.from_pretrained`` (when the source had the
    pre-training head) and always with ``Wav2Vec2Model.from_pretrained``.
    """
    out = claim_folder(out_dir, "export", adopt=only_names(EXPORT_FILE_NAMES),
                       hint="pass a new or empty folder as --to")
    hf = to_transformers_model(ckpt_or_model)
    hf.save_pretrained(str(out))  # config.json + model.safetensors
    _feature_extractor(_config_of(hf)).save_pretrained(str(out))
    log.info("exported %s to %s", type(hf).__name__, out)
    return out


def _config_of(hf: nn.Module) -> Wav2Vec2Config:
    return Wav2Vec2Config.from_dict(getattr(hf.config, CONFIG_KEY)["config"])


def load_exported(model_dir: str | os.PathLike):
    """A directory written by :func:`export_to_transformers` -> our model, exactly as exported.

    Pre-training directories give a ``Wav2Vec2ForPretraining`` (the weights through
    :func:`~lightning_w2v.models.interop.from_huggingface_pretraining`, then our stored config
    and Gumbel temperature restored); encoder-only ones a ``Wav2Vec2Backbone``. Any other
    transformers directory works too (without the stored extras).
    """
    from transformers import Wav2Vec2Config as HFConfig  # optional: the transformers extra

    hf_config = HFConfig.from_pretrained(str(model_dir))
    extra = getattr(hf_config, CONFIG_KEY, None) or {}
    pretraining = "Wav2Vec2ForPreTraining" in (hf_config.architectures or [])
    from ..encoders.sources.huggingface import huggingface_model

    if pretraining:
        model = from_huggingface_pretraining(huggingface_model(model_dir, "Wav2Vec2ForPreTraining"))
        if extra.get("config"):
            config = Wav2Vec2Config.from_dict(extra["config"])
            objective = PretrainingObjective.from_dict(extra.get("objective") or extra["config"])
            restored = Wav2Vec2ForPretraining(config, objective, backbone=_as_torchaudio(model.backbone))
            restored.load_state_dict(model.state_dict(), strict=True)
            model = restored
        if "temperature" in extra:
            model.set_temperature(float(extra["temperature"]))
        return model.eval()
    backbone = backbone_from_huggingface(huggingface_model(model_dir))
    if extra.get("config"):
        config = Wav2Vec2Config.from_dict(extra["config"])
        backbone = Wav2Vec2Backbone(config, _as_torchaudio(backbone))
    return backbone.eval()


def _as_torchaudio(backbone: Wav2Vec2Backbone) -> nn.Module:
    model = build_torchaudio_model(backbone.config)
    model.feature_extractor, model.encoder = backbone.feature_extractor, backbone.encoder
    return model


# --------------------------------------------------------------------------- torchaudio
def torchaudio_state_dict(ckpt_or_model: Any, legacy_weight_norm: bool = False) -> dict[str, torch.Tensor]:
    """State dict of ``torchaudio.models.wav2vec2_model(**torchaudio_kwargs(config))``.

    ``legacy_weight_norm`` names the positional convolution's weight norm ``weight_g`` /
    ``weight_v`` (old ``torch.nn.utils.weight_norm``), which old torchaudio versions need
    and current torch still loads (its weight-norm load hook renames them).
    """
    backbone, _ = _split(resolve_model(ckpt_or_model))
    target = build_torchaudio_model(backbone.config)
    state = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    target.load_state_dict(state, strict=True)  # proves the keys and shapes fit torchaudio's model
    if legacy_weight_norm:
        for key in [k for k in state if ".parametrizations.weight.original" in k]:
            base, which = key.split(".parametrizations.weight.original")
            state[f"{base}.weight_{'g' if which == '0' else 'v'}"] = state.pop(key)
    return state


def export_torchaudio_state_dict(
    ckpt_or_model: Any, path: str | os.PathLike, legacy_weight_norm: bool = False
) -> Path:
    """``torch.save`` the torchaudio state dict (see :func:`torchaudio_state_dict`) to ``path``.

    A ``<path>.json`` beside it holds the ``wav2vec2_model`` keyword arguments: build the
    model with ``torchaudio.models.wav2vec2_model(**kwargs)`` from them, then load the state
    dict (``torch.load``) into it.
    """
    backbone, _ = _split(resolve_model(ckpt_or_model))
    path = Path(path).expanduser()
    state = torchaudio_state_dict(backbone, legacy_weight_norm)
    atomic_save(path, lambda handle: torch.save(state, handle))
    kwargs = torchaudio_kwargs(backbone.config)
    kwargs["extractor_conv_layer_config"] = [list(c) for c in kwargs["extractor_conv_layer_config"]]
    kwargs["aux_num_out"] = None  # no CTC head
    atomic_write_text(Path(str(path) + ".json"), json.dumps(kwargs, indent=1) + "\n")
    return path
