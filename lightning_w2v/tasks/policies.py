"""The paper's fine-tuning policies as data: what trains, what stays in eval mode, default LRs.

This table is the only place the policies are defined. :class:`FinetuneModule` applies the
named policy once, the YAML fragments in ``conf/finetune/policy/`` only name it, and the demo
derives its (scaled-up) learning rates from it. An explicit ``head_lr`` / ``encoder_lr``
overrides the policy's default; composing fragments in any order gives the policy's own LRs.

Paths name submodules of the encoder (:class:`~lightning_w2v.models.Wav2Vec2Backbone`):
``""`` is the whole encoder, ``"feature_extractor"`` the CNN.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class FreezingPolicy:
    name: str
    summary: str
    frozen: tuple[str, ...]  # encoder submodules whose weights never change
    eval_mode: tuple[str, ...]  # encoder submodules kept in eval mode while training (no dropout, no layerdrop)
    head_lr: float  # Adam LR of the linear head
    encoder_lr: float | None  # Adam LR of the encoder's trainable weights; None when nothing of it trains

    @property
    def trains_encoder(self) -> bool:
        return "" not in self.frozen


POLICY_TABLE: dict[str, FreezingPolicy] = {
    "FE": FreezingPolicy("FE", "the encoder is frozen (and in eval mode); only the linear head trains",
                         frozen=("",), eval_mode=("",), head_lr=1e-3, encoder_lr=None),
    "FT1": FreezingPolicy("FT1", "the whole network trains",
                          frozen=(), eval_mode=(), head_lr=1e-4, encoder_lr=1e-5),
    "FT2": FreezingPolicy("FT2", "the CNN feature encoder is frozen; projection and Transformer train",
                          frozen=("feature_extractor",), eval_mode=(), head_lr=1e-4, encoder_lr=1e-5),
}


def get_policy(name: str) -> FreezingPolicy:
    if name not in POLICY_TABLE:
        raise ConfigError(f"model.init_args.policy={name!r}: choose one of {', '.join(POLICY_TABLE)}")
    return POLICY_TABLE[name]
