"""Conversion between our models and transformers / torchaudio / fairseq checkpoints.

The backbone always goes through torchaudio's own importers
(``import_huggingface_model``, ``import_fairseq_model``), which reproduce transformers'
hidden states exactly; only the pre-training head (quantizer, projections, mask
embedding) is mapped here.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .backbone import Wav2Vec2Backbone, build_torchaudio_model
from .config import Wav2Vec2Config

log = logging.getLogger(__name__)


def config_from_huggingface(hf_config: Any) -> Wav2Vec2Config:
    """transformers ``Wav2Vec2Config`` -> ours (architecture and objective)."""
    conv_layers = list(zip(hf_config.conv_dim, hf_config.conv_kernel, hf_config.conv_stride))
    return Wav2Vec2Config(
        conv_layers=conv_layers,
        extractor_mode="group_norm" if hf_config.feat_extract_norm == "group" else "layer_norm",
        conv_bias=hf_config.conv_bias,
        embed_dim=hf_config.hidden_size,
        num_layers=hf_config.num_hidden_layers,
        num_heads=hf_config.num_attention_heads,
        ffn_dim=hf_config.intermediate_size,
        layer_norm_first=hf_config.do_stable_layer_norm,
        pos_conv_kernel=hf_config.num_conv_pos_embeddings,
        pos_conv_groups=hf_config.num_conv_pos_embedding_groups,
        dropout=hf_config.hidden_dropout,
        attention_dropout=hf_config.attention_dropout,
        activation_dropout=hf_config.activation_dropout,
        dropout_input=hf_config.feat_proj_dropout,
        dropout_features=getattr(hf_config, "feat_quantizer_dropout", 0.0),
        layerdrop=hf_config.layerdrop,
        num_codevector_groups=hf_config.num_codevector_groups,
        num_codevectors_per_group=hf_config.num_codevectors_per_group,
        codevector_dim=hf_config.codevector_dim,
        final_dim=hf_config.proj_codevector_dim,
        mask_prob=hf_config.mask_time_prob,
        mask_length=hf_config.mask_time_length,
        min_masks=hf_config.mask_time_min_masks,
        num_negatives=hf_config.num_negatives,
        logit_temperature=hf_config.contrastive_logits_temperature,
        diversity_loss_weight=hf_config.diversity_loss_weight,
    )


def config_to_huggingface(config: Wav2Vec2Config):
    """Ours -> transformers ``Wav2Vec2Config``."""
    from transformers import Wav2Vec2Config as HFConfig

    return HFConfig(
        conv_dim=[layer[0] for layer in config.conv_layers],
        conv_kernel=[layer[1] for layer in config.conv_layers],
        conv_stride=[layer[2] for layer in config.conv_layers],
        num_feat_extract_layers=len(config.conv_layers),
        feat_extract_norm="group" if config.extractor_mode == "group_norm" else "layer",
        conv_bias=config.conv_bias,
        hidden_size=config.embed_dim,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.ffn_dim,
        do_stable_layer_norm=config.layer_norm_first,
        num_conv_pos_embeddings=config.pos_conv_kernel,
        num_conv_pos_embedding_groups=config.pos_conv_groups,
        hidden_dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout,
        feat_proj_dropout=config.dropout_input,
        feat_quantizer_dropout=config.dropout_features,
        layerdrop=config.layerdrop,
        num_codevector_groups=config.num_codevector_groups,
        num_codevectors_per_group=config.num_codevectors_per_group,
        codevector_dim=config.codevector_dim,
        proj_codevector_dim=config.final_dim,
        mask_time_prob=config.mask_prob,
        mask_time_length=config.mask_length,
        mask_time_min_masks=config.min_masks,
        num_negatives=config.num_negatives,
        contrastive_logits_temperature=config.logit_temperature,
        diversity_loss_weight=config.diversity_loss_weight,
        feat_extract_activation="gelu",
        hidden_act="gelu",
        apply_spec_augment=True,
    )


def _load_hf(model_or_dir: Any, cls_name: str):
    if isinstance(model_or_dir, nn.Module):
        return model_or_dir
    import transformers

    return getattr(transformers, cls_name).from_pretrained(str(model_or_dir))


def backbone_from_huggingface(model_or_dir: Any) -> Wav2Vec2Backbone:
    """A transformers ``Wav2Vec2Model`` / ``Wav2Vec2ForPreTraining`` (or its dir) -> backbone."""
    from torchaudio.models.wav2vec2.utils import import_huggingface_model

    hf = _load_hf(model_or_dir, "Wav2Vec2Model")
    encoder = getattr(hf, "wav2vec2", hf)  # the pre-training model wraps the encoder
    config = config_from_huggingface(hf.config)
    return Wav2Vec2Backbone(config, import_huggingface_model(encoder))


def from_huggingface_pretraining(model_or_dir: Any):
    """transformers ``Wav2Vec2ForPreTraining`` -> our ``Wav2Vec2ForPretraining`` (all weights)."""
    from .wav2vec2 import Wav2Vec2ForPretraining

    hf = _load_hf(model_or_dir, "Wav2Vec2ForPreTraining")
    backbone = backbone_from_huggingface(hf.wav2vec2)
    model = Wav2Vec2ForPretraining(backbone.config, backbone=backbone)
    with torch.no_grad():
        model.mask_emb.copy_(hf.wav2vec2.masked_spec_embed)
        model.quantizer.codevectors.copy_(hf.quantizer.codevectors)
        model.quantizer.weight_proj.load_state_dict(hf.quantizer.weight_proj.state_dict())
        model.final_proj.load_state_dict(hf.project_hid.state_dict())
        model.project_q.load_state_dict(hf.project_q.state_dict())
    return model


def backbone_from_torchaudio_bundle(name: str) -> Wav2Vec2Backbone:
    """``torchaudio.pipelines.<name>`` (e.g. WAV2VEC2_BASE, the speech baseline) -> backbone.

    Downloads the bundle's weights on first use (torch hub cache).
    """
    import torchaudio

    bundle = getattr(torchaudio.pipelines, name, None)
    if bundle is None or not hasattr(bundle, "get_model"):
        raise ConfigError(f"model.init_args.encoder.path={name!r}: torchaudio.pipelines has no wav2vec 2.0 bundle "
                          "of that name (try WAV2VEC2_BASE)")
    params = bundle._params
    config = Wav2Vec2Config(
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
    return Wav2Vec2Backbone(config, bundle.get_model())


def backbone_from_fairseq(state: dict, config: Wav2Vec2Config | None = None) -> Wav2Vec2Backbone:
    """A loaded fairseq wav2vec 2.0 checkpoint (``torch.load`` of its ``.pt``) -> backbone.

    fairseq itself is not needed: the architecture comes from the checkpoint's ``cfg.model``
    (or ``args``), the weights go through torchaudio's converter with strict loading.
    """
    from torchaudio.models.wav2vec2.utils.import_fairseq import _convert_state_dict

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


def huggingface_has_quantizer(path: str) -> bool:
    """Whether a transformers model directory / hub id holds pre-training head weights."""
    import transformers

    try:
        _, info = transformers.Wav2Vec2ForPreTraining.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError):
        return False
    return not any(key.startswith("quantizer.") for key in info["missing_keys"])


def config_from_fairseq(state: dict) -> Wav2Vec2Config:
    cfg = state.get("cfg", {}) or {}
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else getattr(cfg, "model", None)
    if model_cfg is None and state.get("args") is not None:
        model_cfg = vars(state["args"])
    if model_cfg is None:
        raise CheckpointError("fairseq checkpoint has neither cfg.model nor args: cannot read its architecture")
    get = (lambda k, d: model_cfg.get(k, d)) if isinstance(model_cfg, dict) else (lambda k, d: getattr(model_cfg, k, d))
    conv_layers = eval(get("conv_feature_layers", "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"))  # noqa: S307 - fairseq stores a Python literal
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
    )
