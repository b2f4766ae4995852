"""``encoder.source: fairseq``: a fairseq wav2vec 2.0 checkpoint (.pt), read without fairseq."""
from __future__ import annotations

from ...checkpoints.reader import load_file
from ...models import interop
from ...models.backbone import Wav2Vec2Backbone
from ..source import EncoderSource


class FairseqSource(EncoderSource):
    name = "fairseq"
    summary = "a fairseq wav2vec 2.0 checkpoint (.pt)"
    path_is_file = True

    def build(self, key: str) -> Wav2Vec2Backbone:
        return interop.backbone_from_fairseq(load_file(self.path, key))

    def num_hidden_states(self, key: str) -> int:
        return interop.config_from_fairseq(load_file(self.path, key)).num_layers + 1
