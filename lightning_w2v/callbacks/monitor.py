"""Health monitor for wav2vec 2.0 pre-training: notices a run that has stopped learning.

:class:`PretrainHealthMonitor` is a Lightning callback. Every ``check_every_n_steps``
optimizer steps it reads the metrics :class:`~lightning_w2v.tasks.pretrain.PretrainModule`
logs (``trainer.callback_metrics``: ``train/prob_perplexity``, ``train/code_perplexity``,
``train/accuracy``, ``train/contrastive_loss``, ``train/diversity_loss``,
``train/grad_norm``, ``train/temperature``) and applies four rules. A rule that holds at
``patience`` consecutive checks fires once (it can fire again after it has cleared):

``codebook_collapse``
    The quantizer uses only a handful of codes: ``train/code_perplexity`` (the hard
    perplexity, summed over the G groups; between G and G*V) is below a threshold. By
    default the threshold is ``max(min_codes_per_group * G, min_codebook_fraction * G * V)``
    = ``max(2 G, 0.02 G V)``, capped at ``G * (1 + (V - 1) / 4)`` so that it stays below
    the best reachable value for tiny codebooks. BASE (G=2, V=320): 12.8 of 640; the tiny
    preset (G=2, V=32): 4 of 64; G=2, V=2: 2.5 of 4. ``min_code_perplexity`` sets it
    directly.
``trivial_task``
    ``train/contrastive_loss`` (bits per masked frame) below ``trivial_loss`` (0.05) while
    ``train/accuracy`` is above ``trivial_accuracy`` (0.99): the model always picks the
    positive. After a codebook collapse every distractor has the positive's codes and is
    masked out, which makes the task trivial; otherwise suspect leakage of the targets.
``vanishing_gradients`` / ``exploding_gradients``
    ``train/grad_norm`` (before clipping) below ``min_grad_norm`` (1e-6) / above
    ``max_grad_norm`` (1e4) or not finite.

When a rule fires the monitor warns (:class:`PretrainHealthWarning`, with a plain-language
diagnosis: what it means and what to try), logs ``health/alert`` = 1 and
``health/<rule>`` = 1 to every logger, and, for a W&B logger, a ``health/events`` table,
the diagnosis as text, and a W&B alert (sent when the run syncs, if at all, when offline:
the metric and the table are the dependable record). Events are also appended to
``<default_root_dir>/health_events.jsonl`` and kept in :attr:`PretrainHealthMonitor.events`.
With ``abort_on_collapse=True`` a rule in ``abort_rules`` also saves
``<default_root_dir>/collapse.ckpt`` and stops the run (``trainer.should_stop``).

Add it to a config::

    trainer:
      callbacks:
        - class_path: lightning_w2v.callbacks.PretrainHealthMonitor
          init_args: {check_every_n_steps: 50, patience: 3}
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_warn

from ..errors import ConfigError

log = logging.getLogger(__name__)

RULES = ("codebook_collapse", "trivial_task", "vanishing_gradients", "exploding_gradients")
WATCHED = ("prob_perplexity", "code_perplexity", "accuracy", "contrastive_loss", "diversity_loss", "grad_norm",
           "temperature")


class PretrainHealthWarning(UserWarning):
    """A pre-training run looks unhealthy (see :mod:`lightning_w2v.callbacks.monitor`)."""


@dataclass
class HealthEvent:
    rule: str  # one of RULES
    step: int  # global step of the check at which the rule fired
    checks: int  # consecutive checks for which it held
    message: str  # the plain-language diagnosis
    values: dict[str, float] = field(default_factory=dict)  # the watched metrics at that check


def default_code_perplexity_threshold(num_groups: int, num_vars: int, min_codes_per_group: float = 2.0,
                                      min_codebook_fraction: float = 0.02) -> float:
    """The collapse threshold for ``train/code_perplexity`` (which lies in [G, G*V]).

    ``max(min_codes_per_group * G, min_codebook_fraction * G * V)``, capped at
    ``G * (1 + (V - 1) / 4)`` (a quarter of the way from one code per group to all of them),
    so a tiny codebook can still pass.
    """
    g, v = int(num_groups), int(num_vars)
    threshold = max(min_codes_per_group * g, min_codebook_fraction * g * v)
    return min(threshold, g * (1.0 + (v - 1) / 4.0))


def _fmt(values: Mapping[str, float], key: str, spec: str = ".4g") -> str:
    value = values.get(key)
    return "n/a" if value is None else format(value, spec)


class PretrainHealthMonitor(pl.Callback):
    """Warns (and optionally stops) when pre-training collapses. See the module docstring.

    Args:
        check_every_n_steps: check at every N-th optimizer step.
        patience: consecutive checks a rule must hold before it fires.
        prefix: prefix of the watched metrics (``train/``).
        min_code_perplexity: collapse threshold of the code perplexity; ``None``: derived
            from the codebook size G*V (:func:`default_code_perplexity_threshold`).
        min_codes_per_group, min_codebook_fraction: parameters of that default.
        num_groups, num_vars: the codebook size; ``None``: read from the module's config.
        trivial_loss: contrastive loss (bits) below which, with ``trivial_accuracy``, the
            task counts as trivial.
        trivial_accuracy: contrastive accuracy above which, with ``trivial_loss``, ...
        min_grad_norm, max_grad_norm: gradient-norm band; outside (or non-finite) fires.
        start_step: no checks before this global step (e.g. the first warm-up steps).
        abort_on_collapse: on a rule in ``abort_rules``, save ``collapse.ckpt`` and stop.
        abort_rules: which rules abort (default: all four).
        checkpoint_name: file name of that checkpoint under ``trainer.default_root_dir``.
        log_to_wandb: also log a table, text and an alert when a logger is a WandbLogger.
    """

    def __init__(
        self,
        check_every_n_steps: int = 10,
        patience: int = 3,
        prefix: str = "train/",
        min_code_perplexity: float | None = None,
        min_codes_per_group: float = 2.0,
        min_codebook_fraction: float = 0.02,
        num_groups: int | None = None,
        num_vars: int | None = None,
        trivial_loss: float = 0.05,
        trivial_accuracy: float = 0.99,
        min_grad_norm: float = 1e-6,
        max_grad_norm: float = 1e4,
        start_step: int = 0,
        abort_on_collapse: bool = False,
        abort_rules: Sequence[str] = RULES,
        checkpoint_name: str = "collapse.ckpt",
        log_to_wandb: bool = True,
    ) -> None:
        super().__init__()
        if check_every_n_steps < 1 or patience < 1:
            raise ConfigError("PretrainHealthMonitor: check_every_n_steps and patience must be >= 1")
        unknown = sorted(set(abort_rules) - set(RULES))
        if unknown:
            raise ConfigError(f"PretrainHealthMonitor abort_rules: unknown rule(s) {unknown}; choose from {RULES}")
        self.check_every_n_steps = int(check_every_n_steps)
        self.patience = int(patience)
        self.prefix = prefix
        self.min_code_perplexity = min_code_perplexity
        self.min_codes_per_group = float(min_codes_per_group)
        self.min_codebook_fraction = float(min_codebook_fraction)
        self.num_groups, self.num_vars = num_groups, num_vars
        self.trivial_loss = float(trivial_loss)
        self.trivial_accuracy = float(trivial_accuracy)
        self.min_grad_norm = float(min_grad_norm)
        self.max_grad_norm = float(max_grad_norm)
        self.start_step = int(start_step)
        self.abort_on_collapse = bool(abort_on_collapse)
        self.abort_rules = tuple(abort_rules)
        self.checkpoint_name = checkpoint_name
        self.log_to_wandb = bool(log_to_wandb)
        self.events: list[HealthEvent] = []
        self.checkpoint_path: Path | None = None
        self.checks = 0  # checks done so far
        self.last_values: dict[str, float] = {}  # the watched metrics at the latest check
        self._warned_missing = False
        self._streaks = {rule: 0 for rule in RULES}
        self._last_checked_step = -1

    # ------------------------------------------------------------------ rules (pure)
    def code_perplexity_threshold(self) -> float | None:
        if self.min_code_perplexity is not None:
            return float(self.min_code_perplexity)
        if self.num_groups is None or self.num_vars is None:
            return None  # codebook size unknown: rule off
        return default_code_perplexity_threshold(self.num_groups, self.num_vars, self.min_codes_per_group,
                                                 self.min_codebook_fraction)

    def conditions(self, values: Mapping[str, float]) -> dict[str, bool]:
        """Which rules hold for one check's metrics (keys without the prefix)."""
        held = dict.fromkeys(RULES, False)
        threshold = self.code_perplexity_threshold()
        perplexity = values.get("code_perplexity", values.get("prob_perplexity"))
        if threshold is not None and perplexity is not None and math.isfinite(perplexity):
            held["codebook_collapse"] = perplexity < threshold
        loss, accuracy = values.get("contrastive_loss"), values.get("accuracy")
        if loss is not None and accuracy is not None:
            held["trivial_task"] = loss < self.trivial_loss and accuracy > self.trivial_accuracy
        norm = values.get("grad_norm")
        if norm is not None:
            held["exploding_gradients"] = not math.isfinite(norm) or norm > self.max_grad_norm
            held["vanishing_gradients"] = math.isfinite(norm) and norm < self.min_grad_norm
        return held

    def observe(self, step: int, values: Mapping[str, float]) -> list[HealthEvent]:
        """Apply the rules to one check; return the events that fire at it (streak == patience)."""
        self.checks += 1
        self.last_values = {k: float(v) for k, v in values.items()}
        fired = []
        for rule, holds in self.conditions(values).items():
            self._streaks[rule] = self._streaks[rule] + 1 if holds else 0
            if self._streaks[rule] == self.patience:
                event = HealthEvent(rule, int(step), self._streaks[rule], self.diagnose(rule, values),
                                    {k: float(v) for k, v in values.items()})
                self.events.append(event)
                fired.append(event)
        return fired

    def diagnose(self, rule: str, v: Mapping[str, float]) -> str:
        """What the rule means for this run and what to try, in plain language."""
        checks = f"{self.patience} consecutive checks (every {self.check_every_n_steps} steps)"
        if rule == "codebook_collapse":
            g, n = self.num_groups, self.num_vars
            size = f"{g} x {n} = {g * n}" if g and n else "unknown"
            return (
                f"Codebook collapse: the quantizer uses only a handful of codes (code perplexity "
                f"{_fmt(v, 'code_perplexity')}, prob perplexity {_fmt(v, 'prob_perplexity')}, threshold "
                f"{self.code_perplexity_threshold():.4g}; codebook {size} entries; Gumbel temperature "
                f"{_fmt(v, 'temperature')}; diversity loss {_fmt(v, 'diversity_loss')}) for {checks}. "
                "The targets no longer carry information, so what the model learns is useless for "
                "downstream tasks, and distractors that share the positive's codes are masked out, "
                "which makes the contrastive task easy. Try: a larger diversity_loss_weight (fairseq: "
                "0.1; check it is not 0), a lower learning rate or a longer warm-up, a slower Gumbel "
                "temperature decay (or a higher temperature_min), and check that the audio is not silent "
                "or constant."
            )
        if rule == "trivial_task":
            return (
                f"Trivial contrastive task: contrastive loss {_fmt(v, 'contrastive_loss')} bits with accuracy "
                f"{_fmt(v, 'accuracy')} for {checks}. The model picks the true target every time, so it is "
                "not learning useful representations. Usual causes: (1) codebook collapse (code perplexity "
                f"{_fmt(v, 'code_perplexity')}): all distractors equal the positive and are masked out; "
                "(2) leakage: the masked frames reach the Transformer (masking not applied, mask_prob 0), "
                "or the distractors are too easy (num_negatives tiny, near-silent or repeated audio). "
                "Try: restore diversity_loss_weight, check masked_fraction > 0 and num_negatives, and "
                "inspect the training audio."
            )
        if rule == "vanishing_gradients":
            return (
                f"Vanishing gradients: gradient norm {_fmt(v, 'grad_norm')} < {self.min_grad_norm:g} for {checks}. "
                "The parameters have essentially stopped changing: the loss may be saturated (see the "
                "trivial-task and collapse rules), the learning-rate schedule may have reached 0, or "
                "everything may be frozen. Try: check train/lr, requires_grad, and the loss curve; "
                "restart from an earlier checkpoint with a lower learning rate."
            )
        if rule == "exploding_gradients":
            return (
                f"Exploding gradients: gradient norm {_fmt(v, 'grad_norm')} > {self.max_grad_norm:g} (or not "
                f"finite) for {checks}, before clipping. Training is unstable and may diverge. Try: a lower "
                "learning rate or longer warm-up, a smaller clip_grad_norm, fp32 or bf16 instead of fp16, "
                "and check the feature penalty and the audio scale (clipped or unnormalised inputs)."
            )
        raise ValueError(f"unknown rule {rule!r}")

    # ------------------------------------------------------------------ callback
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        config = getattr(pl_module, "config", None)
        if self.num_groups is None:
            self.num_groups = getattr(config, "num_codevector_groups", None)
        if self.num_vars is None:
            self.num_vars = getattr(config, "num_codevectors_per_group", None)

    def _values(self, trainer: pl.Trainer) -> dict[str, float]:
        values = {}
        for name in WATCHED:
            value = trainer.callback_metrics.get(self.prefix + name)
            if value is not None:
                values[name] = float(value)
        return values

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step == self._last_checked_step or step < max(self.start_step, 1) or step % self.check_every_n_steps:
            return  # gradient accumulation repeats a step; check once per step
        self._last_checked_step = step
        values = self._values(trainer)
        if not values and not self._warned_missing:
            self._warned_missing = True
            rank_zero_warn(f"PretrainHealthMonitor: none of {[self.prefix + n for n in WATCHED]} is logged; "
                           "nothing to check (is this a PretrainModule? is `prefix` right?)")
        fired = self.observe(step, values)
        for event in fired:
            self._report(trainer, event)
        if not self.abort_on_collapse:
            return
        abort = any(event.rule in self.abort_rules for event in fired)
        abort = trainer.strategy.reduce_boolean_decision(abort, all=False)  # every rank stops together
        if abort:
            path = Path(trainer.default_root_dir) / self.checkpoint_name
            trainer.save_checkpoint(path)
            self.checkpoint_path = path
            trainer.should_stop = True
            message = (f"PretrainHealthMonitor stopped the run at step {step} "
                       f"({', '.join(e.rule for e in fired) or 'another rank'}); checkpoint: {path}")
            log.warning(message)
            rank_zero_warn(message, category=PretrainHealthWarning)

    def _report(self, trainer: pl.Trainer, event: HealthEvent) -> None:
        rank_zero_warn(f"[step {event.step}] {event.message}", category=PretrainHealthWarning)
        log.warning("[step %d] %s", event.step, event.message)
        if not trainer.is_global_zero:
            return
        root = Path(trainer.default_root_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
            with (root / "health_events.jsonl").open("a") as fh:
                fh.write(json.dumps(asdict(event)) + "\n")
        except OSError as error:  # the diagnosis is already out; never break training for a log file
            log.warning("could not write health_events.jsonl: %s", error)
        metrics = {"health/alert": 1.0, f"health/{event.rule}": 1.0}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=event.step)
        if self.log_to_wandb:
            self._report_wandb(trainer, event)

    def _report_wandb(self, trainer: pl.Trainer, event: HealthEvent) -> None:

        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            columns = ["step", "rule", "diagnosis", "values"]
            rows = [[e.step, e.rule, e.message, json.dumps(e.values)] for e in self.events]
            logger.log_table(key="health/events", columns=columns, data=rows, step=event.step)
            logger.log_text(key="health/diagnosis", columns=["step", "rule", "diagnosis"],
                            data=[[event.step, event.rule, event.message]], step=event.step)
            try:  # an e-mail / Slack alert when online; offline it is at most stored for sync
                logger.experiment.alert(title=f"pre-training health: {event.rule}"[:63], text=event.message,
                                        level="WARN", wait_duration=0)
            except Exception as error:  # noqa: BLE001 - alerts are best effort
                log.debug("W&B alert not sent: %s", error)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"streaks": dict(self._streaks), "events": [asdict(e) for e in self.events]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._streaks.update(state_dict.get("streaks", {}))
        self.events = [HealthEvent(**e) for e in state_dict.get("events", [])]
