"""LightningModules: pre-training and fine-tuning."""
from .finetune import FinetuneModule
from .pretrain import PretrainModule

__all__ = ["FinetuneModule", "PretrainModule"]
