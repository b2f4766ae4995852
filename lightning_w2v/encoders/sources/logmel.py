"""``encoder.source: logmel``: log-mel frames, the baseline every learned encoder is held against."""
from __future__ import annotations

from ...models.logmel import LogMelEncoder
from ...vocabulary import SAMPLE_RATE
from ..source import EncoderSource

DEFAULT_HOP_MS = 20.0  # wav2vec 2.0's frame rate


class LogMelSource(EncoderSource):
    name = "logmel"
    summary = "no path: 128 log-mel bands every hop_ms (default 20)"
    needs_path = False
    takes_hop = True

    def build(self, key: str) -> LogMelEncoder:
        hop_ms = DEFAULT_HOP_MS if self.spec.hop_ms is None else self.spec.hop_ms
        return LogMelEncoder(max(1, round(hop_ms * SAMPLE_RATE / 1000)))

    def num_hidden_states(self, key: str) -> int:
        return 1

    def label(self) -> str:
        return "log-mel"
