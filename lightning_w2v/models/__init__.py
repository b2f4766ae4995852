"""Plain nn.Modules of wav2vec 2.0 (no Lightning here)."""
from ..vocabulary import SAMPLE_RATE
from .backbone import EncoderOutput, Wav2Vec2Backbone
from .config import Wav2Vec2Config, base_config, preset_config, small_config, tiny_config
from .quantizer import GumbelVectorQuantizer
from .wav2vec2 import Wav2Vec2ForPretraining, Wav2Vec2PretrainingOutput

__all__ = [
    "SAMPLE_RATE",
    "EncoderOutput",
    "GumbelVectorQuantizer",
    "Wav2Vec2Backbone",
    "Wav2Vec2Config",
    "Wav2Vec2ForPretraining",
    "Wav2Vec2PretrainingOutput",
    "base_config",
    "preset_config",
    "small_config",
    "tiny_config",
]
