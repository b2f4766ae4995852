"""Preemption: SIGUSR1 or SIGTERM from outside, mid-run, gives a checkpoint at the current
step and exit code 0; ``--ckpt_path last`` continues from that step.

One chain of ``python cli.py fit --config conf/pretrain/demo.yaml`` subprocesses: the first
run is stopped by SIGUSR1, its resumption by SIGTERM, and the third run finishes.
"""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
from test_resume import load, prepared_cache, pretrain_args, step_losses, subprocess_env

REPO = Path(__file__).resolve().parent.parent
MAX_STEPS = 8


class PauseAtStep(pl.Callback):
    """Test helper (loaded by the subprocess): when update `step` + 1 starts, write `marker`
    and wait (at most a minute) for the test to send a signal, so it lands mid-batch."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, marker

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step != self.step:
            return
        Path(self.marker).write_text(str(trainer.global_step))
        preemption = [cb for cb in trainer.callbacks if type(cb).__name__ == "PreemptionCheckpoint"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if trainer.received_sigterm or any(cb._received is not None for cb in preemption):
                return
            time.sleep(0.05)


def run_until_signal(args: list[str], marker: Path, signum: int, timeout: float = 240):
    proc = subprocess.Popen(args, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.communicate()[0] if proc.poll() is not None else ""
                pytest.fail(f"the run never reached the pause step (rc={proc.poll()}):\n{out[-4000:]}")
            time.sleep(0.05)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out


@pytest.mark.slow
def test_sigusr1_then_sigterm_checkpoint_exit_zero_and_resume(demo_root, tmp_path):
    root = demo_root / "musicnet"
    cache = prepared_cache(root, tmp_path / "cache", max_recordings=1)
    run_dir = tmp_path / "run"
    ckpt = run_dir / "checkpoints" / "last.ckpt"  # PreemptionCheckpoint's file: the config's checkpoint dir

    def args(*extra: str) -> list[str]:
        # the test's ModelCheckpoint saves only at the end; the preemption checkpoints go to
        # the config's checkpoint dir (its ModelCheckpoint saves every 100 steps: never here)
        return pretrain_args(root, cache, run_dir, MAX_STEPS, MAX_STEPS, *extra)

    def pause(step: int, marker: Path) -> tuple[str, ...]:
        return ("--trainer.callbacks+=test_preemption.PauseAtStep", f"--trainer.callbacks.step={step}",
                f"--trainer.callbacks.marker={marker}")

    # 1. SIGUSR1 during update 3 (global_step 2 -> 3): saved after update 3, exit 0.
    rc, out = run_until_signal(args(*pause(2, tmp_path / "m1")), tmp_path / "m1", signal.SIGUSR1)
    assert rc == 0, out[-4000:]
    assert "SIGUSR1 received: saved the state after step 3" in out
    first = load(ckpt)
    assert first["global_step"] == 3
    assert first["rng_states"]["world_size"] == 1  # the config's RNGStateCallback ran
    assert not list(ckpt.parent.glob(".*.partial"))

    # 2. Resume; SIGTERM during update 6: saved after update 6, exit 0.
    rc, out = run_until_signal(args("--ckpt_path=last", *pause(5, tmp_path / "m2")), tmp_path / "m2",
                               signal.SIGTERM)
    assert rc == 0, out[-4000:]
    assert "SIGTERM received: saved the state after step 6" in out
    assert load(ckpt)["global_step"] == 6
    assert sorted(step_losses(run_dir)) == [3, 4, 5]  # continued from step 3 (0-based CSV steps)

    # 3. Resume to the end.
    done = subprocess.run(args("--ckpt_path=last"), cwd=REPO, env=subprocess_env(), capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    assert sorted(step_losses(run_dir)) == [6, 7]
    assert load(run_dir / "ckpt" / "last.ckpt")["global_step"] == MAX_STEPS
