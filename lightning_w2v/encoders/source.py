"""The base of every encoder source: one class per place an encoder comes from.

A source is built from an :class:`~lightning_w2v.encoders.spec.EncoderSpec`, checks the
fields it needs (and refuses those it does not use), and builds its
:class:`~lightning_w2v.models.encoder.Encoder`. Everything that differs between sources lives
in its class, so nothing outside the registry asks which source an encoder came from.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..models.encoder import Encoder
    from ..models.wav2vec2 import Wav2Vec2ForPretraining
    from .spec import EncoderSpec

KEY = "model.init_args.encoder"  # the setting that errors name


class EncoderSource:
    name: ClassVar[str]  # the source's name in the vocabulary (encoder.source)
    summary: ClassVar[str]  # what ``path`` names, in a few words (errors, README)
    needs_path: ClassVar[bool] = True
    path_is_file: ClassVar[bool] = False  # ``path`` is a file (so a workflow passes it on as an absolute path)
    takes_preset: ClassVar[bool] = False
    takes_hop: ClassVar[bool] = False  # the frame hop is a choice (``hop_ms``)
    carries_training_state: ClassVar[bool] = False  # a checkpoint that can resume a run (init_mode full-state)

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self.validate()

    @property
    def path(self) -> str:
        return str(self.spec.path)

    def validate(self) -> None:
        """ConfigError naming the field, for a field this source needs and lacks, or does not use."""
        spec = self.spec
        if self.needs_path and not spec.path:
            raise ConfigError(f"set --{KEY}.path (required for encoder.source={self.name!r}: {self.summary})")
        if spec.preset is not None and not self.takes_preset:
            raise ConfigError(f"{KEY}.preset={spec.preset!r} does not apply to encoder.source={self.name!r}; "
                              "remove it")
        if spec.hop_ms is not None and not self.takes_hop:
            raise ConfigError(f"{KEY}.hop_ms={spec.hop_ms} does not apply to encoder.source={self.name!r} (its "
                              "frames are fixed by the model); remove it")
        if spec.hop_ms is not None and spec.hop_ms <= 0:
            raise ConfigError(f"{KEY}.hop_ms={spec.hop_ms} must be positive")

    def build(self, key: str) -> Encoder:
        """The encoder; :class:`~lightning_w2v.errors.CheckpointError` naming ``key`` if it cannot be read."""
        raise NotImplementedError

    def num_hidden_states(self, key: str) -> int:
        """Hidden states 0..L of the encoder; sources override this to read it without building the encoder."""
        return self.build(key).num_hidden_states

    def label(self) -> str:
        """The row name in results tables: the model's own name (a folder, a file, a bundle)."""
        return self.file_name()

    def file_name(self) -> str:
        """The last part of ``path``, without its suffix for a file (a folder's or hub id's name, a bundle)."""
        name = Path(self.path.rstrip("/")).name
        return Path(name).stem if self.path_is_file else name

    def figure_name(self) -> str:
        """The model's name in a figure that compares several (PWCCA): a file's stem, so that checkpoints of
        one run stay apart, else the label."""
        return self.file_name() if self.path_is_file else self.label()

    def pretraining_model(self, key: str) -> Wav2Vec2ForPretraining | None:
        """The whole pre-training model (quantizer included) where the source holds one, else None."""
        return None

    def has_quantizer(self, key: str) -> bool:
        return False
