"""``encoder.source: random``: an untrained encoder of a preset's architecture (the ablation row)."""
from __future__ import annotations

from ...models.backbone import Wav2Vec2Backbone
from ...models.config import preset_config
from ..source import EncoderSource


class RandomSource(EncoderSource):
    name = "random"
    summary = "no path: an untrained encoder of encoder.preset (default: base)"
    needs_path = False
    takes_preset = True

    def validate(self) -> None:
        """A random encoder needs no path (one a composed config sets is not used)."""
        super().validate()
        preset_config(self.preset)  # an unknown preset is named here

    @property
    def preset(self) -> str:
        return self.spec.preset or "base"

    def build(self, key: str) -> Wav2Vec2Backbone:
        return Wav2Vec2Backbone(preset_config(self.preset))

    def num_hidden_states(self, key: str) -> int:
        return preset_config(self.preset).num_layers + 1

    def label(self) -> str:
        return "random"  # the paper's naming: "w2v2 random"
