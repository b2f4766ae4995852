"""Encoders as plug-ins: which encoder a run uses (:class:`EncoderSpec`), where it comes from (the
sources in :mod:`.registry`), and the ready :class:`~lightning_w2v.models.encoder.Encoder`.

Fine-tuning, continued pre-training, HEAR, the probes and the analyses take an
:class:`EncoderSpec`; :func:`load_encoder` turns it into an encoder. Every file is opened
through :mod:`lightning_w2v.checkpoints.reader`, once; the conversions of the wav2vec 2.0
family are pure functions in :mod:`lightning_w2v.models.interop`.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..models.encoder import Encoder
from .registry import SOURCES, source_of
from .source import EncoderSource
from .spec import EncoderSpec
from .training import continued_pretraining_model, load_pretraining_model, untrained_like

__all__ = ["SOURCES", "Encoder", "EncoderSource", "EncoderSpec", "continued_pretraining_model", "load_encoder",
           "load_pretraining_model", "num_hidden_states", "source_of", "untrained_like"]

PATH_KEY = "model.init_args.encoder.path"


def load_encoder(spec: EncoderSpec, key: str = PATH_KEY) -> Encoder:
    """The encoder ``spec`` names; :class:`~lightning_w2v.errors.CheckpointError` naming ``key`` if it
    cannot be read."""
    return source_of(spec).build(key)


def num_hidden_states(spec: EncoderSpec, key: str = "--ckpt") -> int:
    """Hidden states 0..L of the encoder ``spec`` names, read without building it where the source allows."""
    return source_of(spec).num_hidden_states(key)


def require_quantizer(specs: list[EncoderSpec], key: str = "--ckpt") -> None:
    """ConfigError unless every encoder holds a quantizer (the codebook analysis needs one)."""
    for spec in specs:
        if not source_of(spec).has_quantizer(key):
            raise ConfigError(f"{key}={spec.path} ({spec.source}) has no quantizer; the codebook analysis needs "
                              "one of our pre-training checkpoints (--source checkpoint)")
