"""The registry of encoder sources: one class per source (:mod:`.sources`), keyed by its vocabulary name.

Adding a source is one module in :mod:`.sources` and one entry here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..vocabulary import ENCODER_SOURCES
from .source import KEY, EncoderSource
from .sources.checkpoint import CheckpointSource
from .sources.fairseq import FairseqSource
from .sources.huggingface import HuggingFaceSource
from .sources.logmel import LogMelSource
from .sources.pesto import PestoSource
from .sources.random import RandomSource
from .sources.torchaudio_bundle import TorchaudioSource
from .sources.torchcrepe import TorchcrepeSource

if TYPE_CHECKING:
    from .spec import EncoderSpec

SOURCES: dict[str, type[EncoderSource]] = {source.name: source for source in (
    CheckpointSource, TorchaudioSource, HuggingFaceSource, FairseqSource, RandomSource, TorchcrepeSource,
    PestoSource, LogMelSource)}
assert tuple(SOURCES) == ENCODER_SOURCES, "the registry and the vocabulary name the same sources, in order"


def source_of(spec: EncoderSpec) -> EncoderSource:
    """The source ``spec`` names, its fields checked (ConfigError naming the field otherwise)."""
    if spec.source not in SOURCES:
        raise ConfigError(f"{KEY}.source={spec.source!r}: choose one of {', '.join(SOURCES)}")
    return SOURCES[spec.source](spec)
