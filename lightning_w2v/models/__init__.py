"""Plain nn.Modules (no Lightning here): the encoder interface, wav2vec 2.0 and its pre-training model,
and the CREPE and PESTO wrappers."""
from ..vocabulary import SAMPLE_RATE
from .backbone import Wav2Vec2Backbone
from .config import (
    PretrainingObjective,
    Wav2Vec2Config,
    base_config,
    preset_config,
    preset_objective,
    small_config,
    tiny_config,
)
from .encoder import Encoder, EncoderOutput
from .quantizer import GumbelVectorQuantizer
from .wav2vec2 import Wav2Vec2ForPretraining, Wav2Vec2PretrainingOutput

__all__ = [
    "SAMPLE_RATE",
    "Encoder",
    "EncoderOutput",
    "GumbelVectorQuantizer",
    "PretrainingObjective",
    "Wav2Vec2Backbone",
    "Wav2Vec2Config",
    "Wav2Vec2ForPretraining",
    "Wav2Vec2PretrainingOutput",
    "base_config",
    "preset_config",
    "preset_objective",
    "small_config",
    "tiny_config",
]
