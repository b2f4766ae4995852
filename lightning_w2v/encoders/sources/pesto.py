"""``encoder.source: pesto``: PESTO, with the weights the pesto-pitch package ships (``mir-1k_g7``)."""
from __future__ import annotations

from ...errors import CheckpointError, ConfigError
from ...models.pesto import PestoEncoder
from ...vocabulary import SAMPLE_RATE
from ..source import KEY, EncoderSource

DEFAULT_MODEL = "mir-1k_g7"  # pesto-pitch's default; its older mir-1k.ckpt does not load into this version
DEFAULT_HOP_MS = 10.0  # pesto.predict's default step


def import_pesto():
    try:
        import pesto
        import pesto.loader
        import pesto.utils
    except ImportError:
        raise ConfigError("encoder.source='pesto' needs the pesto-pitch package: "
                          "pip install 'lightning-w2v[baselines]'") from None
    return pesto


class PestoSource(EncoderSource):
    name = "pesto"
    summary = f"a PESTO model name (default {DEFAULT_MODEL})"
    needs_path = False
    takes_hop = True

    @property
    def model_name(self) -> str:
        return self.spec.path or DEFAULT_MODEL

    @property
    def path(self) -> str:
        return self.model_name

    def build(self, key: str) -> PestoEncoder:
        import torch

        pesto = import_pesto()
        hop_ms = DEFAULT_HOP_MS if self.spec.hop_ms is None else self.spec.hop_ms
        try:
            model = _load_strictly(pesto, self.model_name, hop_ms)
        except FileNotFoundError:
            raise ConfigError(f"{KEY}.path={self.model_name!r}: pesto-pitch has no model of that name "
                              f"(it ships {DEFAULT_MODEL})") from None
        with torch.no_grad():
            return PestoEncoder(model.eval(), pesto.utils.reduce_activations, self.model_name)

    def num_hidden_states(self, key: str) -> int:
        return 3

    def label(self) -> str:
        return f"PESTO {self.model_name}"


def _load_strictly(pesto, name: str, hop_ms: float):
    """``pesto.loader.load_model``, but a checkpoint whose weights do not all load is refused (pesto itself
    only warns, and would run with freshly initialised layers)."""
    import logging

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger(pesto.loader.__name__)
    logger.addHandler(handler)
    try:
        model = pesto.loader.load_model(name, step_size=hop_ms, sampling_rate=SAMPLE_RATE)
    finally:
        logger.removeHandler(handler)
    if records:
        raise CheckpointError(f"{KEY}.path={name!r}: its weights do not load into pesto-pitch's model exactly "
                              f"({records[0].splitlines()[0]} ...); use {DEFAULT_MODEL}")
    return model
