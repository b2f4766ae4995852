"""PretrainHealthMonitor: each rule on synthetic metric streams, a forced collapse, a healthy demo run."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from wandb_records import finished_run_records

from lightning_w2v import PretrainModule
from lightning_w2v.callbacks.monitor import (
    RULES,
    PretrainHealthMonitor,
    PretrainHealthWarning,
    default_code_perplexity_threshold,
)
from lightning_w2v.runner import run_cli as cli_main

CONF = Path(__file__).resolve().parent.parent / "conf"
HEALTHY = {"prob_perplexity": 50.0, "code_perplexity": 45.0, "accuracy": 0.3, "contrastive_loss": 3.0,
           "diversity_loss": 0.2, "grad_norm": 0.5, "temperature": 1.5}


def _stream(monitor: PretrainHealthMonitor, values: list[dict]) -> list[tuple[int, str]]:
    """Feed one check per entry (steps 10, 20, ...); return (step, rule) of every event."""
    fired = []
    for i, v in enumerate(values, start=1):
        fired += [(e.step, e.rule) for e in monitor.observe(10 * i, v)]
    return fired


def test_default_collapse_threshold_is_relative_to_the_codebook():
    assert default_code_perplexity_threshold(2, 320) == pytest.approx(12.8)  # BASE: 2% of 640
    assert default_code_perplexity_threshold(2, 32) == pytest.approx(4.0)  # tiny: 2 per group
    assert default_code_perplexity_threshold(2, 2) == pytest.approx(2.5)  # capped below the max (4)
    assert default_code_perplexity_threshold(1, 1) == pytest.approx(1.0)  # never above what is reachable
    assert PretrainHealthMonitor(min_code_perplexity=7.0, num_groups=2, num_vars=320).code_perplexity_threshold() == 7.0
    assert PretrainHealthMonitor().code_perplexity_threshold() is None  # unknown codebook: rule off


def test_healthy_stream_is_silent():
    monitor = PretrainHealthMonitor(patience=2, num_groups=2, num_vars=32)
    assert _stream(monitor, [HEALTHY] * 20) == []
    assert _stream(monitor, [{}] * 5) == []  # nothing logged (yet): nothing fires


def test_codebook_collapse_needs_patience_fires_once_and_again_after_recovery():
    monitor = PretrainHealthMonitor(patience=3, num_groups=2, num_vars=32)
    collapsed = {**HEALTHY, "code_perplexity": 2.1, "prob_perplexity": 2.3}
    stream = [HEALTHY, collapsed, collapsed, HEALTHY,  # a 2-check dip: below patience
              collapsed, collapsed, collapsed, collapsed, collapsed,  # fires at the 3rd (step 70), once
              HEALTHY, collapsed, collapsed, collapsed]  # recovers, collapses again: fires at step 130
    assert _stream(monitor, stream) == [(70, "codebook_collapse"), (130, "codebook_collapse")]
    event = monitor.events[0]
    assert event.values["code_perplexity"] == pytest.approx(2.1) and event.checks == 3
    assert "Codebook collapse" in event.message and "Try:" in event.message and "diversity_loss_weight" in event.message


def test_collapse_falls_back_to_prob_perplexity_and_uses_an_explicit_threshold():
    monitor = PretrainHealthMonitor(patience=1, min_code_perplexity=10.0)
    assert _stream(monitor, [{"prob_perplexity": 9.0}]) == [(10, "codebook_collapse")]
    assert _stream(monitor, [{"code_perplexity": 11.0}]) == []


@pytest.mark.parametrize("loss,accuracy,fires", [(0.01, 1.0, True), (0.0, 0.995, True), (0.01, 0.6, False),
                                                 (1.0, 1.0, False), (3.0, 0.1, False)])
def test_trivial_task_needs_both_tiny_loss_and_near_perfect_accuracy(loss, accuracy, fires):
    monitor = PretrainHealthMonitor(patience=2)
    events = _stream(monitor, [{**HEALTHY, "contrastive_loss": loss, "accuracy": accuracy}] * 2)
    assert events == ([(20, "trivial_task")] if fires else [])
    if fires:
        assert "leakage" in monitor.events[0].message and "Try:" in monitor.events[0].message


@pytest.mark.parametrize("norm,rule", [(1e-8, "vanishing_gradients"), (0.0, "vanishing_gradients"),
                                       (5e4, "exploding_gradients"), (math.inf, "exploding_gradients"),
                                       (math.nan, "exploding_gradients"), (1e-5, None), (9e3, None)])
def test_gradient_norm_band(norm, rule):
    monitor = PretrainHealthMonitor(patience=3)
    events = _stream(monitor, [{**HEALTHY, "grad_norm": norm}] * 3)
    assert events == ([(30, rule)] if rule else [])


def test_gradient_thresholds_are_configurable():
    monitor = PretrainHealthMonitor(patience=1, min_grad_norm=1e-2, max_grad_norm=10.0)
    assert _stream(monitor, [{"grad_norm": 1e-3}, {"grad_norm": 1.0}, {"grad_norm": 20.0}]) == [
        (10, "vanishing_gradients"), (30, "exploding_gradients")]


def test_rules_are_independent_and_validated():
    monitor = PretrainHealthMonitor(patience=1, num_groups=2, num_vars=2)
    everything_wrong = {"code_perplexity": 2.0, "contrastive_loss": 0.0, "accuracy": 1.0, "grad_norm": 1e-9}
    assert {rule for _, rule in _stream(monitor, [everything_wrong])} == {
        "codebook_collapse", "trivial_task", "vanishing_gradients"}
    assert set(RULES) == {"codebook_collapse", "trivial_task", "vanishing_gradients", "exploding_gradients"}
    with pytest.raises(ValueError, match="abort_rules"):
        PretrainHealthMonitor(abort_rules=("everything",))
    with pytest.raises(ValueError):
        PretrainHealthMonitor(patience=0)


# ---------------------------------------------------------------------------- real runs
def _random_audio_loader(seed: int = 0, examples: int = 8, batch_size: int = 4):
    generator = torch.Generator().manual_seed(seed)
    waves = [torch.randn(16000, generator=generator) for _ in range(examples)]
    return torch.utils.data.DataLoader(waves, batch_size=batch_size,
                                       collate_fn=lambda xs: {"waveforms": torch.stack(xs)})


def test_forced_collapse_is_diagnosed_checkpointed_stopped_and_logged(tmp_path, monkeypatch):
    """No diversity loss, 2 codes per group, a high LR held (no decay) and a fixed Gumbel temperature
    of 0.5: the quantizer collapses to one code per group within ~20 steps (every seed 0..13 tried
    collapsed by step 18; then every distractor equals the positive and the loss goes to 0)."""
    import wandb
    from pytorch_lightning.loggers import CSVLogger

    from lightning_w2v.callbacks import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    pl.seed_everything(0)
    overrides = {"diversity_loss_weight": 0.0, "num_codevectors_per_group": 2, "temperature_max": 0.5,
                 "temperature_min": 0.5}
    module = PretrainModule(preset="tiny", model_overrides=overrides, lr=0.1, warmup_steps=1, total_steps=1000)
    monitor = PretrainHealthMonitor(check_every_n_steps=2, patience=3, abort_on_collapse=True)
    loggers = [CSVLogger(tmp_path, name="csv"), WandbLogger(project="lightning-w2v-test", save_dir=str(tmp_path))]
    trainer = pl.Trainer(max_steps=80, accelerator="cpu", logger=loggers, callbacks=[monitor], log_every_n_steps=1,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    with pytest.warns(PretrainHealthWarning, match="Codebook collapse"):
        trainer.fit(module, _random_audio_loader())
    wandb.finish()

    rules = [e.rule for e in monitor.events]
    assert "codebook_collapse" in rules
    collapse = next(e for e in monitor.events if e.rule == "codebook_collapse")
    assert collapse.values["code_perplexity"] < 2.5  # threshold for G=2, V=2
    assert trainer.global_step == collapse.step < 80  # stopped at the check that fired
    # the checkpoint was written there and holds the collapsed model
    assert monitor.checkpoint_path == tmp_path / "collapse.ckpt"
    checkpoint = torch.load(tmp_path / "collapse.ckpt", weights_only=False)
    assert checkpoint["global_step"] == collapse.step and "wav2vec2_config" in checkpoint
    saved = [json.loads(line) for line in (tmp_path / "health_events.jsonl").read_text().splitlines()]
    assert [e["rule"] for e in saved] == rules
    # logged to every logger: the CSV has the alert at the event's step ...
    csv_file = next(tmp_path.glob("csv/version_*/metrics.csv"))
    alerts = [row for row in csv.DictReader(csv_file.open()) if row.get("health/alert")]
    assert alerts and float(alerts[0]["health/alert"]) == 1.0 and int(alerts[0]["step"]) <= collapse.step
    # ... and the offline W&B run holds the metric, the events table and the diagnosis
    records = finished_run_records(tmp_path)
    for key in (b"health/alert", b"health/codebook_collapse", b"health/events", b"health/diagnosis"):
        assert key in records, key


def test_healthy_demo_pretraining_is_silent(demo_root, tmp_path, recwarn):
    """The monitor as configured in conf/pretrain/demo.yaml checks a short demo run and stays quiet."""
    cli = cli_main(["fit", "--config", str(CONF / "pretrain" / "demo.yaml"),
                    f"--data.init_args.root={demo_root / 'musicnet'}",
                    f"--data.init_args.cache_dir={tmp_path / 'cache'}",
                    "--trainer.max_steps=30", f"--trainer.default_root_dir={tmp_path / 'run'}",
                    "--data.init_args.max_batch_seconds=6.0",  # 2 crops of 3 s per batch: fast
                    "--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=1",
                    "--trainer.num_sanity_val_steps=0", "--probe.notes=null"])
    monitors = [c for c in cli.trainer.callbacks if isinstance(c, PretrainHealthMonitor)]
    assert len(monitors) == 1
    monitor = monitors[0]
    assert monitor.checks == 3  # steps 10, 20, 30
    assert set(monitor.last_values) == {"prob_perplexity", "code_perplexity", "accuracy", "contrastive_loss",
                                        "diversity_loss", "grad_norm", "temperature"}  # it saw every metric
    assert monitor.last_values["code_perplexity"] > 4.0
    assert monitor.code_perplexity_threshold() == pytest.approx(4.0)  # tiny: G=2, V=32
    assert monitor.events == [], [e.message for e in monitor.events]
    assert not [w for w in recwarn if issubclass(w.category, PretrainHealthWarning)]
    assert not (tmp_path / "run" / "collapse.ckpt").exists()
    assert not (tmp_path / "run" / "health_events.jsonl").exists()
    assert cli.trainer.global_step == 30
