"""Two-process CPU DDP (gloo) through ``python cli.py fit``: demo pre-training and fine-tuning.

Pre-training: the loss normaliser (masked frames summed over ranks) equals the sum of the
ranks' own counts, the ranks read disjoint segments that together make the whole epoch,
and only rank 0 writes the logs and checkpoints (the checkpoint holding both ranks' RNG
states). Fine-tuning: the demo pitch config fits and tests on two ranks.
"""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
from test_resume import load, prepared_cache, pretrain_args, subprocess_env

REPO = Path(__file__).resolve().parent.parent
DDP = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]


class RecordRankBatches(pl.Callback):
    """Test helper (loaded by the subprocesses): each rank writes ``rank<r>.json`` with, per
    training step, the segment indices it trained on and its local / global masked frames."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.steps: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({
            "epoch": trainer.current_epoch,
            "indices": batch["indices"].tolist(),
            "num_masked": int(pl_module.last_num_masked),
            "num_masked_global": int(pl_module.last_num_masked_global),
        })

    def on_train_end(self, trainer, pl_module):
        out = Path(self.out_dir) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps({"world_size": trainer.world_size, "steps": self.steps}))


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_ddp_pretraining_shards_data_and_sums_masked_frames(demo_root, tmp_path):
    root = demo_root / "musicnet"
    cache = prepared_cache(root, tmp_path / "cache", max_recordings=1)
    run_dir, record = tmp_path / "run", tmp_path / "record"
    record.mkdir()
    # 11 segments in 6 batches: 3 steps per rank are one whole epoch, without padding
    args = pretrain_args(root, cache, run_dir, 3, 3, *DDP,
                         "--model.init_args.model_overrides={mask_length: 4, mask_prob: 0.5, num_negatives: 10}",
                         "--trainer.callbacks+=test_ddp.RecordRankBatches", f"--trainer.callbacks.out_dir={record}")
    done = run(args)
    assert done.returncode == 0, done.stderr[-6000:]

    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    steps0, steps1 = ranks[0]["steps"], ranks[1]["steps"]
    assert len(steps0) == len(steps1) == 3
    for a, b in zip(steps0, steps1):
        assert a["num_masked_global"] == b["num_masked_global"] == a["num_masked"] + b["num_masked"]
    # the epoch's one-crop batch lands on one rank only: the counts differ at least once,
    # so the check above could not pass by doubling a rank's own count
    assert any(a["num_masked"] != b["num_masked"] for a, b in zip(steps0, steps1))

    seen0 = [i for s in steps0 for i in s["indices"]]
    seen1 = [i for s in steps1 for i in s["indices"]]
    assert not set(seen0) & set(seen1), "the ranks trained on the same segments"
    assert len(set(seen0)) == len(seen0) and len(set(seen1)) == len(seen1)
    assert sorted(seen0 + seen1) == list(range(11))  # together: every segment once

    # only rank 0 wrote: one CSV log version, one row per step; checkpoints hold both ranks' RNG
    assert [p.name for p in (run_dir / "logs").iterdir()] == ["version_0"]
    with open(run_dir / "logs" / "version_0" / "metrics.csv") as f:
        train_steps = [int(row["step"]) for row in csv.DictReader(f) if row["train/loss"]]
    assert train_steps == [0, 1, 2]
    ckpt = load(run_dir / "ckpt" / "last.ckpt")
    assert ckpt["global_step"] == 3 and ckpt["rng_states"]["world_size"] == 2
    assert sorted(p.name for p in (run_dir / "ckpt").iterdir()) == ["epoch=0-step=3.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_ddp_finetuning_fits_and_tests(demo_root, tiny_pretrain_ckpt, tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, str(REPO / "cli.py"), "fit",
            "--config", str(REPO / "conf/finetune/demo_pitch.yaml"),
            "--config", str(REPO / "conf/finetune/policy/ft2.yaml"), *DDP,
            f"--data.init_args.root={demo_root / 'nsynth'}", "--data.init_args.batch_size=4",
            "--data.init_args.subset=0.05", f"--model.init_args.encoder.path={tiny_pretrain_ckpt}",
            "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
            "--trainer.limit_test_batches=2",
            "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={run_dir}"]
    done = run(args)
    assert done.returncode == 0, done.stderr[-6000:]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2
    summary = json.loads((run_dir / "test_metrics.json").read_text())  # test_after_fit, on two ranks
    assert "test/acc" in summary["metrics"]
    assert [p.name for p in (run_dir / "logs").iterdir()] == ["version_0"]


@pytest.mark.slow
def test_ddp_sigterm_saves_both_ranks_state_after_the_same_step_and_exits_zero(demo_root, tmp_path):
    from test_preemption import run_until_signal

    root = demo_root / "musicnet"
    cache = prepared_cache(root, tmp_path / "cache", max_recordings=1)
    run_dir, marker = tmp_path / "run", tmp_path / "marker"
    args = pretrain_args(root, cache, run_dir, 6, 6, *DDP,
                         "--model.init_args.model_overrides={mask_length: 4, mask_prob: 0.5, num_negatives: 10}",
                         "--trainer.callbacks+=test_preemption.PauseAtStep", "--trainer.callbacks.step=1",
                         f"--trainer.callbacks.marker={marker}")
    # SIGTERM to the launching process (rank 0); Lightning forwards it to rank 1
    rc, out = run_until_signal(args, marker, signal.SIGTERM)
    assert rc == 0, out[-6000:]
    assert "SIGTERM received: saved the state after step 2" in out
    ckpt = load(run_dir / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 2 and ckpt["rng_states"]["world_size"] == 2
