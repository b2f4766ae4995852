"""lightning_w2v: wav2vec 2.0 pre-training, fine-tuning and analysis for music, on PyTorch Lightning.

Importing the package (or ``lightning_w2v.models`` / ``lightning_w2v.hear``) loads neither
Lightning nor the data modules: the LightningModules load on first use of
``lightning_w2v.PretrainModule`` / ``FinetuneModule`` (the class paths the configs name).
"""
from __future__ import annotations

__version__ = "0.2.0"
__all__ = ["FinetuneModule", "PretrainModule", "__version__"]


def __getattr__(name: str):
    if name in ("FinetuneModule", "PretrainModule"):
        from . import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'lightning_w2v' has no attribute {name!r}")
