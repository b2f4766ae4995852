"""Conversion between our models and transformers / torchaudio / fairseq models, in memory.

Pure functions from models or state dicts that are already loaded (the files are opened in
:mod:`lightning_w2v.encoders`). The backbone always goes through torchaudio's own
importers (``import_huggingface_model``, fairseq's state-dict converter), which reproduce
transformers' hidden states exactly; only the pre-training head (quantizer, projections,
mask embedding) is mapped here.
"""
from __future__ import annotations

import ast
import logging
from typing import Any

import torch
from torch import nn
from torchaudio.models.wav2vec2.utils import import_huggingface_model
from torchaudio.models.wav2vec2.utils.import_fairseq import _convert_state_dict

from ..errors import CheckpointError
from ..vocabulary import SAMPLE_RATE
from .backbone import Wav2Vec2Backbone, build_torchaudio_model
from .config import PretrainingObjective, Wav2Vec2Config
from .wav2vec2 import Wav2Vec2ForPretraining

log = logging.getLogger(__name__)


# Our model config's field -> transformers' config field, for the fields that map one to one ...
HF_FIELDS = {
    "conv_bias": "conv_bias", "embed_dim": "hidden_size", "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads", "ffn_dim": "intermediate_size", "layer_norm_first": "do_stable_layer_norm",
    "pos_conv_kernel": "num_conv_pos_embeddings", "pos_conv_groups": "num_conv_pos_embedding_groups",
    "dropout": "hidden_dropout", "attention_dropout": "attention_dropout",
    "activation_dropout": "activation_dropout", "dropout_input": "feat_proj_dropout",
    "dropout_features": "feat_quantizer_dropout", "layerdrop": "layerdrop",
    "num_codevector_groups": "num_codevector_groups", "num_codevectors_per_group": "num_codevectors_per_group",
    "codevector_dim": "codevector_dim", "final_dim": "proj_codevector_dim",
}
# ... and our pre-training objective's
HF_OBJECTIVE_FIELDS = {
    "mask_prob": "mask_time_prob", "mask_length": "mask_time_length", "min_masks": "mask_time_min_masks",
    "num_negatives": "num_negatives", "logit_temperature": "contrastive_logits_temperature",
    "diversity_loss_weight": "diversity_loss_weight",
}
HF_DEFAULTS = {"feat_quantizer_dropout": 0.0}  # missing from some transformers configs

# The one weight-name table between our models and transformers', read in both directions (import
# here, export in lightning_w2v.checkpoints.export). Module paths: ours under the backbone, theirs under
# the transformers base model (Wav2Vec2Model; ``wav2vec2.`` inside Wav2Vec2ForPreTraining).
HF_BACKBONE_MODULES = (
    ("feature_extractor", "feature_extractor"),
    ("encoder.feature_projection", "feature_projection"),
    ("encoder.transformer", "encoder"),
)
# The pre-training head: ours under Wav2Vec2ForPretraining, theirs under Wav2Vec2ForPreTraining.
HF_PRETRAINING_HEAD = (
    ("mask_emb", "wav2vec2.masked_spec_embed"),
    ("quantizer.codevectors", "quantizer.codevectors"),
    ("quantizer.weight_proj", "quantizer.weight_proj"),
    ("final_proj", "project_hid"),
    ("project_q", "project_q"),
)


def _named(model: nn.Module, path: str):
    """The submodule or parameter at ``path``."""
    module_path, _, leaf = path.rpartition(".")
    owner = model.get_submodule(module_path) if module_path else model
    return getattr(owner, leaf)


@torch.no_grad()
def copy_named_weights(source: nn.Module, target: nn.Module, pairs, reverse: bool = False) -> None:
    """Copy each ``(ours, theirs)`` of ``pairs`` from ``source`` to ``target`` (ours -> theirs, or the
    reverse): a parameter by value, a module by strict ``load_state_dict``."""
    for ours, theirs in pairs:
        src_path, dst_path = (theirs, ours) if reverse else (ours, theirs)
        src, dst = _named(source, src_path), _named(target, dst_path)
        if isinstance(dst, nn.Module):
            dst.load_state_dict(src.state_dict(), strict=True)
        else:
            dst.copy_(src)


# transformers model type -> our Transformer family (HuBERT and MERT share wav2vec 2.0's encoder)
HF_FAMILIES = {"wav2vec2": "wav2vec2", "hubert": "wav2vec2", "wavlm": "wavlm", "data2vec-audio": "data2vec_audio"}


def config_from_huggingface(hf_config: Any, sample_rate: int = SAMPLE_RATE, normalize_waveform: bool = False
                            ) -> Wav2Vec2Config:
    """transformers ``Wav2Vec2Config`` / ``HubertConfig`` / ``WavLMConfig`` / ``Data2VecAudioConfig`` -> ours
    (architecture and objective). The input convention comes from the feature extractor's config."""
    values = {ours: getattr(hf_config, theirs, HF_DEFAULTS.get(theirs)) for ours, theirs in HF_FIELDS.items()}
    values = {ours: value for ours, value in values.items() if value is not None}  # e.g. HuBERT has no quantizer
    family = HF_FAMILIES.get(hf_config.model_type, "wav2vec2")
    extras: dict[str, Any] = {}
    if family == "wavlm":
        extras = {"num_buckets": hf_config.num_buckets, "max_distance": hf_config.max_bucket_distance}
    elif family == "data2vec_audio":  # layer-normed CNN, post-LN Transformer, stacked positional convs
        values.update(layer_norm_first=False, pos_conv_kernel=hf_config.conv_pos_kernel_size)
        extras = {"pos_conv_layers": hf_config.num_conv_pos_embeddings}
    norm = getattr(hf_config, "feat_extract_norm", "layer")
    return Wav2Vec2Config(
        conv_layers=list(zip(hf_config.conv_dim, hf_config.conv_kernel, hf_config.conv_stride)),
        extractor_mode="group_norm" if norm == "group" else "layer_norm",
        family=family, sample_rate=int(sample_rate), normalize_waveform=bool(normalize_waveform),
        **values, **extras,
    )


def objective_from_huggingface(hf_config: Any) -> PretrainingObjective:
    """The pre-training settings a transformers config holds (the rest: BASE's)."""
    values = {ours: getattr(hf_config, theirs, None) for ours, theirs in HF_OBJECTIVE_FIELDS.items()}
    return PretrainingObjective(**{ours: value for ours, value in values.items() if value is not None})


def config_to_huggingface(config: Wav2Vec2Config, objective: PretrainingObjective | None = None):
    """Ours -> transformers ``Wav2Vec2Config`` (the objective: BASE's unless given)."""
    from transformers import Wav2Vec2Config as HFConfig  # optional: the transformers extra

    objective = objective or PretrainingObjective()
    return HFConfig(
        conv_dim=[layer[0] for layer in config.conv_layers],
        conv_kernel=[layer[1] for layer in config.conv_layers],
        conv_stride=[layer[2] for layer in config.conv_layers],
        num_feat_extract_layers=len(config.conv_layers),
        feat_extract_norm="group" if config.extractor_mode == "group_norm" else "layer",
        feat_extract_activation="gelu",
        hidden_act="gelu",
        apply_spec_augment=True,
        **{theirs: getattr(config, ours) for ours, theirs in HF_FIELDS.items()},
        **{theirs: getattr(objective, ours) for ours, theirs in HF_OBJECTIVE_FIELDS.items()},
    )


def backbone_from_huggingface(hf_model: nn.Module, sample_rate: int = SAMPLE_RATE,
                              normalize_waveform: bool = False) -> Wav2Vec2Backbone:
    """A transformers ``Wav2Vec2Model`` / ``HubertModel`` / ``WavLMModel`` / ``Data2VecAudioModel`` or
    ``Wav2Vec2ForPreTraining`` (in memory) -> backbone, every weight loaded strictly."""
    encoder = getattr(hf_model, "wav2vec2", hf_model)  # the pre-training model wraps the encoder
    config = config_from_huggingface(hf_model.config, sample_rate, normalize_waveform)
    if config.family == "data2vec_audio":  # torchaudio has no importer for it; the keys are wav2vec 2.0's
        return Wav2Vec2Backbone(config, _import_data2vec_audio(encoder, config))
    return Wav2Vec2Backbone(config, import_huggingface_model(encoder))


def _import_data2vec_audio(hf_model: nn.Module, config: Wav2Vec2Config) -> nn.Module:
    """transformers ``Data2VecAudioModel`` -> torchaudio modules (CNN, projection, Transformer), strict.

    Its CNN is wav2vec 2.0's layer-normed one, its layers are post-LN wav2vec 2.0 layers and
    its positional convs are :class:`StackedPositionalEmbedding`, all with the same weight names.
    """
    model = build_torchaudio_model(config)
    copy_named_weights(hf_model, model, HF_BACKBONE_MODULES, reverse=True)
    return model


def from_huggingface_pretraining(hf_model: nn.Module, sample_rate: int = SAMPLE_RATE,
                                 normalize_waveform: bool = False) -> Wav2Vec2ForPretraining:
    """transformers ``Wav2Vec2ForPreTraining`` (in memory) -> our ``Wav2Vec2ForPretraining`` (all weights).

    Its objective: transformers' masking and loss settings, where its config has them (see
    :func:`objective_from_huggingface`)."""
    backbone = backbone_from_huggingface(hf_model.wav2vec2, sample_rate, normalize_waveform)
    model = Wav2Vec2ForPretraining(backbone.config, objective_from_huggingface(hf_model.config), backbone=backbone)
    copy_named_weights(hf_model, model, HF_PRETRAINING_HEAD, reverse=True)
    return model


def config_from_torchaudio(params: dict[str, Any], sample_rate: int = SAMPLE_RATE,
                           normalize_waveform: bool = False) -> Wav2Vec2Config:
    """The architecture of a torchaudio pipeline bundle (its ``_params``) as our config."""
    wavlm = {"family": "wavlm", "num_buckets": params["encoder_num_buckets"],
             "max_distance": params["encoder_max_distance"]} if "encoder_num_buckets" in params else {}
    return Wav2Vec2Config(
        sample_rate=int(sample_rate),
        normalize_waveform=bool(normalize_waveform),
        **wavlm,
        conv_layers=params["extractor_conv_layer_config"],
        extractor_mode=params["extractor_mode"],
        conv_bias=params["extractor_conv_bias"],
        embed_dim=params["encoder_embed_dim"],
        num_layers=params["encoder_num_layers"],
        num_heads=params["encoder_num_heads"],
        ffn_dim=params["encoder_ff_interm_features"],
        layer_norm_first=params["encoder_layer_norm_first"],
        pos_conv_kernel=params["encoder_pos_conv_kernel"],
        pos_conv_groups=params["encoder_pos_conv_groups"],
        layerdrop=params["encoder_layer_drop"],
    )


def backbone_from_torchaudio(model: nn.Module, params: dict[str, Any], sample_rate: int = SAMPLE_RATE,
                             normalize_waveform: bool = False) -> Wav2Vec2Backbone:
    """A torchaudio ``Wav2Vec2Model`` (a bundle's ``get_model()``, maybe wrapped to normalise the
    waveform) and the bundle's ``_params`` -> backbone; the normalisation moves into the config."""
    model = getattr(model, "model", model)  # torchaudio wraps normalising bundles in _Wav2Vec2Model
    return Wav2Vec2Backbone(config_from_torchaudio(params, sample_rate, normalize_waveform), model)


def backbone_from_fairseq(state: dict, config: Wav2Vec2Config | None = None) -> Wav2Vec2Backbone:
    """A loaded fairseq wav2vec 2.0 checkpoint (``torch.load`` of its ``.pt``) -> backbone.

    fairseq itself is not needed: the architecture comes from the checkpoint's ``cfg.model``
    (or ``args``), the weights go through torchaudio's converter with strict loading.
    """
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError("not a fairseq checkpoint (no 'model' weights in it); for our own checkpoints "
                              "use encoder.source=checkpoint")
    if config is None:
        config = config_from_fairseq(state)
    weights = {k: v for k, v in state["model"].items()
               if k.startswith(("feature_extractor.", "encoder.", "post_extract_proj.", "layer_norm."))}
    model = build_torchaudio_model(config)
    model.load_state_dict(_convert_state_dict(weights), strict=True)
    return Wav2Vec2Backbone(config, model)


def config_from_fairseq(state: dict) -> Wav2Vec2Config:
    cfg = state.get("cfg", {}) or {}
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else getattr(cfg, "model", None)
    if model_cfg is None and state.get("args") is not None:
        model_cfg = vars(state["args"])
    if model_cfg is None:
        raise CheckpointError("fairseq checkpoint has neither cfg.model nor args: cannot read its architecture")
    get = _getter(model_cfg)
    task_cfg = (cfg.get("task") if isinstance(cfg, dict) else getattr(cfg, "task", None)) or model_cfg
    task = _getter(task_cfg)  # the input convention: fairseq's task.normalize and task.sample_rate
    conv_layers = _conv_layers(get("conv_feature_layers", "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"))
    return Wav2Vec2Config(
        conv_layers=conv_layers,
        extractor_mode="group_norm" if get("extractor_mode", "default") == "default" else "layer_norm",
        conv_bias=get("conv_bias", False),
        embed_dim=get("encoder_embed_dim", 768),
        num_layers=get("encoder_layers", 12),
        num_heads=get("encoder_attention_heads", 12),
        ffn_dim=get("encoder_ffn_embed_dim", 3072),
        layer_norm_first=get("layer_norm_first", False),
        pos_conv_kernel=get("conv_pos", 128),
        pos_conv_groups=get("conv_pos_groups", 16),
        num_codevector_groups=get("latent_groups", 2),
        num_codevectors_per_group=get("latent_vars", 320),
        codevector_dim=get("latent_dim", 0) or get("final_dim", 256),
        final_dim=get("final_dim", 256),
        sample_rate=int(task("sample_rate", SAMPLE_RATE)),
        normalize_waveform=bool(task("normalize", False)),
    )


def _getter(settings: Any):
    """``get(key, default)`` over a fairseq settings dict or namespace."""
    if isinstance(settings, dict):
        return settings.get
    return lambda key, default: getattr(settings, key, default)


def _conv_layers(text: str) -> list[tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers`` string, e.g. ``"[(512,10,5)] + [(512,3,2)] * 4"``, evaluated
    safely: only lists, tuples, integers, ``+`` and ``*`` are allowed (fairseq itself calls eval)."""
    def value(node: ast.AST):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(item) for item in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise CheckpointError(f"fairseq conv_feature_layers {text!r}: not a list of (dim, kernel, stride)")

    layers = value(ast.parse(text, mode="eval").body)
    if not isinstance(layers, list) or not all(isinstance(t, tuple) and len(t) == 3 for t in layers):
        raise CheckpointError(f"fairseq conv_feature_layers {text!r}: not a list of (dim, kernel, stride)")
    return layers
