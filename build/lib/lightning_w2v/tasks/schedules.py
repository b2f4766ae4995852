"""Per-update schedules: learning rate and Gumbel temperature (pure functions of the step)."""
from __future__ import annotations


def warmup_linear_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: linear 0 -> 1 over ``warmup_steps``, then linear 1 -> 0 at ``total_steps``.

    fairseq's ``polynomial_decay`` with power 1 and end_learning_rate 0, as in the BASE
    pre-training config (32k warm-up, 400k updates).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    remaining = (total_steps - step) / (total_steps - warmup_steps)
    return max(0.0, min(1.0, remaining))


def gumbel_temperature(step: int, start: float, end: float, decay: float) -> float:
    """``max(start * decay**step, end)``: 2 -> 0.5 with decay 0.999995 per update (fairseq)."""
    return max(start * decay**step, end)
