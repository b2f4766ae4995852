"""``encoder.source: torchaudio``: a torchaudio pipeline bundle (WAV2VEC2_BASE: the paper's speech baseline)."""
from __future__ import annotations

import torchaudio.pipelines

from ...errors import ConfigError
from ...models import interop
from ...models.backbone import Wav2Vec2Backbone
from ..source import EncoderSource

# The pipeline bundles of the families the backbone reproduces (wav2vec 2.0, XLS-R, HuBERT, WavLM)
TORCHAUDIO_MODEL_TYPES = ("Wav2Vec2", "HuBERT", "WavLM")


def torchaudio_bundle(name: str, key: str = "model.init_args.encoder.path"):
    """The pipeline bundle ``name``, checked before anything is downloaded."""
    bundle = getattr(torchaudio.pipelines, str(name), None)
    if bundle is None or not hasattr(bundle, "get_model") or not hasattr(bundle, "_params"):
        raise ConfigError(f"{key}={name!r}: torchaudio.pipelines has no wav2vec 2.0, HuBERT or WavLM bundle of "
                          "that name (try WAV2VEC2_BASE, HUBERT_BASE or WAVLM_BASE_PLUS)")
    if getattr(bundle, "_model_type", "Wav2Vec2") not in TORCHAUDIO_MODEL_TYPES:
        raise ConfigError(f"{key}={name!r} is a torchaudio {bundle._model_type} bundle; the encoder loads "
                          f"{', '.join(TORCHAUDIO_MODEL_TYPES)} bundles")
    return bundle


class TorchaudioSource(EncoderSource):
    name = "torchaudio"
    summary = "a torchaudio pipeline bundle name, e.g. WAV2VEC2_BASE (the paper's speech baseline)"

    def build(self, key: str) -> Wav2Vec2Backbone:
        """The bundle's model, with its sample rate and waveform normalisation. torchaudio downloads the
        bundle's weights on first use (torch hub cache)."""
        bundle = torchaudio_bundle(self.path, key)
        return interop.backbone_from_torchaudio(bundle.get_model(), bundle._params, bundle.sample_rate,
                                               bundle._normalize_waveform)

    def num_hidden_states(self, key: str) -> int:
        return int(torchaudio_bundle(self.path, key)._params["encoder_num_layers"]) + 1

    def label(self) -> str:
        return "speech" if self.path == "WAV2VEC2_BASE" else self.path.lower()  # the paper's "w2v2 speech"
