"""The paper's fine-tuning policies as data: what trains, what stays in eval mode, default LRs.

This table is the only place the policies are defined. :class:`FinetuneModule` applies the
named policy once, the YAML fragments in ``conf/finetune/policy/`` only name it, and the demo
derives its (scaled-up) learning rates from it. An explicit ``head_lr`` / ``encoder_lr``
overrides the policy's default; composing fragments in any order gives the policy's own LRs.

Policies name the encoder's trainable parts (``Encoder.parts``): ``""`` is the whole encoder,
``"cnn"`` the wav2vec 2.0 family's CNN feature encoder. A policy that names a part the encoder
does not have (FT2 on CREPE, which has no separate feature encoder) is refused by name
(:func:`policy_part`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

# What each part a policy may name is, for the error when an encoder lacks it
PART_NAMES = {"cnn": "separate CNN feature encoder"}


@dataclass(frozen=True)
class FreezingPolicy:
    name: str
    summary: str
    frozen: tuple[str, ...]  # encoder parts whose weights never change
    eval_mode: tuple[str, ...]  # encoder parts kept in eval mode while training (no dropout, no layerdrop)
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
                          frozen=("cnn",), eval_mode=(), head_lr=1e-4, encoder_lr=1e-5),
}


def get_policy(name: str) -> FreezingPolicy:
    if name not in POLICY_TABLE:
        raise ConfigError(f"model.init_args.policy={name!r}: choose one of {', '.join(POLICY_TABLE)}")
    return POLICY_TABLE[name]


def policy_part(encoder, policy: FreezingPolicy, part: str, label: str):
    """The encoder's part ``part`` that ``policy`` freezes; ConfigError naming the policy if there is none."""
    try:
        return encoder.part(part)
    except (KeyError, AttributeError):
        raise ConfigError(f"model.init_args.policy={policy.name!r} ({policy.summary}) does not apply to the "
                          f"{label} encoder: it has no {PART_NAMES.get(part, part)}; choose "
                          f"{' or '.join(n for n, p in POLICY_TABLE.items() if not set(p.frozen) - {''})}") from None
