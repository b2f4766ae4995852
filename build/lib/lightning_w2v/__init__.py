"""lightning_w2v: wav2vec 2.0 pre-training, fine-tuning and analysis for music, on PyTorch Lightning."""
from .tasks import FinetuneModule, PretrainModule

__all__ = ["FinetuneModule", "PretrainModule"]
__version__ = "0.1.0"
