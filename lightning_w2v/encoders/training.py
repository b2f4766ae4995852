"""Encoders as pre-training starts from them: continued pre-training, the quantizer, untrained twins."""
from __future__ import annotations

import logging

import torch

from ..errors import ConfigError
from ..models.backbone import Wav2Vec2Backbone
from ..models.config import CONTINUABLE_FIELDS, PretrainingObjective, split_overrides
from ..models.encoder import Encoder
from ..models.wav2vec2 import Wav2Vec2ForPretraining
from .registry import source_of
from .sources.checkpoint import load_pretraining_model
from .spec import EncoderSpec

__all__ = ["continued_pretraining_model", "load_pretraining_model", "untrained_like"]
log = logging.getLogger(__name__)
INIT_KEY = "model.init_args.init_from.path"


def continued_pretraining_model(spec: EncoderSpec, overrides: dict | None = None) -> Wav2Vec2ForPretraining:
    """A ``Wav2Vec2ForPretraining`` to continue pre-training from ``spec`` (weights only).

    Sources that hold a quantizer (our pre-training checkpoints, transformers pre-training
    models) bring it and the projections; any other wav2vec 2.0-family encoder (an exported
    encoder, a torchaudio bundle, a fairseq encoder, a fine-tuned checkpoint) gets them freshly
    initialised, with a warning. ``overrides`` changes objective settings (masking, negatives,
    loss weights) and the layerdrop only.
    """
    overrides = dict(overrides or {})
    fixed = sorted(set(overrides) - CONTINUABLE_FIELDS)
    if fixed:
        raise ConfigError(f"model.init_args.model_overrides {fixed} change the architecture of {spec.path}; "
                          f"when continuing pre-training only {sorted(CONTINUABLE_FIELDS)} may change")
    source = source_of(spec)
    model = source.pretraining_model(INIT_KEY)
    if model is None:
        backbone = source.build(INIT_KEY)
        if not isinstance(backbone, Wav2Vec2Backbone):
            raise ConfigError(f"model.init_args.init_from: a {spec.source} encoder is not a wav2vec 2.0-family "
                              "model; pre-training continues only from those")
        log.warning("%s %s has no quantizer: continuing pre-training with a freshly initialised "
                    "quantizer, project_q, final_proj and mask embedding", spec.source, spec.path)
        model = Wav2Vec2ForPretraining(backbone.config, PretrainingObjective(), backbone=backbone)
    if not overrides:
        return model
    layerdrop = overrides.pop("layerdrop", model.backbone.layerdrop)
    _, objective = split_overrides(overrides)
    with torch.random.fork_rng(devices=[]):  # the head's fresh initialisation is overwritten: keep the RNG as it was
        continued = Wav2Vec2ForPretraining(model.config, model.objective.with_overrides(**objective),
                                           backbone=model.backbone, layerdrop=layerdrop)
    continued.load_state_dict(model.state_dict())  # the pre-training head, as loaded
    return continued.train(model.training)


def untrained_like(encoder: Encoder | Wav2Vec2ForPretraining, seed: int = 0):
    """A freshly initialised twin of a wav2vec 2.0 backbone (train mode, as built) or pre-training model
    (eval mode), with a fixed seed and the global RNG untouched: the baseline of the probes and the
    codebook analysis."""
    if not isinstance(encoder, (Wav2Vec2Backbone, Wav2Vec2ForPretraining)):
        raise ConfigError(f"an untrained twin needs a wav2vec 2.0-family architecture; a {type(encoder).__name__} "
                          "has no random initialisation of its own here")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        if isinstance(encoder, Wav2Vec2ForPretraining):
            return Wav2Vec2ForPretraining(encoder.config, encoder.objective).eval()
        return Wav2Vec2Backbone(encoder.config)
    finally:
        torch.random.set_rng_state(state)
