"""Exact resume: a pre-training run SIGKILLed after its step-N checkpoint and resumed with
``--ckpt_path last`` repeats the uninterrupted run bit for bit (parameters, optimiser, losses).

Both runs are ``python cli.py fit --config conf/pretrain/demo.yaml`` subprocesses with small
overrides. Layerdrop is switched on so the backbone's CPU layerdrop generator matters, and
the run crosses an epoch boundary with validation after the resume point. The straight run
reads data in the main process, the killed and resumed runs with 2 DataLoader workers.
Also here: atomic checkpoint writes, and the configs' reliability callbacks.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


class SigkillAtStep(pl.Callback):
    """Test helper (loaded by the subprocess): SIGKILL this process when batch `step`+1 starts,
    i.e. right after everything of step `step`, its checkpoint included, is done."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("WANDB_MODE", "offline")
    env.update(extra)
    return env


def prepared_cache(root: Path, cache: Path, max_recordings: int | None = None) -> Path:
    """Build the 16 kHz cache once, in this process (the subprocesses then find it fresh)."""
    from lightning_w2v.data.musicnet import MusicNetDataModule

    MusicNetDataModule(str(root), cache_dir=str(cache), max_recordings=max_recordings,
                       progress=False).prepare_data()
    return cache


def pretrain_args(root: Path, cache: Path, run_dir: Path, max_steps: int, every: int, *extra: str) -> list[str]:
    return [
        sys.executable, str(REPO / "cli.py"), "fit", "--config", str(REPO / "conf/pretrain/demo.yaml"),
        f"--data.init_args.root={root}", f"--data.init_args.cache_dir={cache}",
        "--data.init_args.max_recordings=1",  # 11 segments: 6 batches per epoch
        "--data.init_args.max_batch_seconds=6",  # 2 crops of 3 s per batch
        "--model.init_args.model_overrides={mask_length: 4, mask_prob: 0.5, num_negatives: 10, layerdrop: 0.5}",
        "--model.init_args.warmup_steps=3",
        f"--trainer.max_steps={max_steps}", "--trainer.log_every_n_steps=1",
        "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={run_dir}",
        # a checkpoint every `every` steps, as the config's (every 100) but sooner
        "--trainer.callbacks+=pytorch_lightning.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={run_dir / 'ckpt'}", f"--trainer.callbacks.every_n_train_steps={every}",
        "--trainer.callbacks.save_top_k=-1", "--trainer.callbacks.save_last=true",
        "--probe.notes=null",  # the linear probes have their own tests (test_probe.py)
        *extra,
    ]


# The killed and resumed runs read with 2 DataLoader workers, the straight run in-process:
# crops depend on (seed, epoch, batch) only, so the runs still agree.
WORKERS = ("--data.init_args.num_workers=2",)


def run(args: list[str], timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def step_losses(run_dir: Path, version: int = -1) -> dict[int, float]:
    """``{logged step: train/loss}`` from one CSVLogger version of a run (default: the newest)."""
    versions = sorted((run_dir / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    out: dict[int, float] = {}
    with open(versions[version] / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row.get("train/loss"):
                out[int(row["step"])] = float(row["train/loss"])
    return out


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same_tensors(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: max |diff| {(a.double() - b.double()).abs().max().item()}"
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def musicnet(demo_root, tmp_path_factory):
    root = demo_root / "musicnet"
    return root, prepared_cache(root, tmp_path_factory.mktemp("resume_cache"), max_recordings=1)


@pytest.mark.slow
@pytest.mark.parametrize("n", [4])  # mid-epoch (6 batches per epoch); the epoch ends at step 6
def test_sigkilled_run_resumes_exactly(musicnet, tmp_path, n):
    root, cache = musicnet
    straight, killed = tmp_path / "straight", tmp_path / "killed"

    a = run(pretrain_args(root, cache, straight, 2 * n, n))
    assert a.returncode == 0, a.stderr[-4000:]

    b1 = run(pretrain_args(root, cache, killed, 2 * n, n, *WORKERS, "--trainer.callbacks+=test_resume.SigkillAtStep",
                           f"--trainer.callbacks.step={n}"))
    assert b1.returncode == -signal.SIGKILL, b1.stderr[-4000:]
    ckpt_n = load(killed / "ckpt" / "last.ckpt")
    assert ckpt_n["global_step"] == n
    assert not list((killed / "ckpt").glob(".*.partial"))

    b2 = run(pretrain_args(root, cache, killed, 2 * n, n, *WORKERS, "--ckpt_path=last"))
    assert b2.returncode == 0, b2.stderr[-4000:]

    final_a, final_b = load(straight / "ckpt" / "last.ckpt"), load(killed / "ckpt" / "last.ckpt")
    assert final_a["global_step"] == final_b["global_step"] == 2 * n
    assert_same_tensors(final_a["state_dict"], final_b["state_dict"], "state_dict")
    assert_same_tensors(final_a["optimizer_states"], final_b["optimizer_states"], "optimizer")
    assert final_a["lr_schedulers"] == final_b["lr_schedulers"]
    assert_same_tensors(final_a["rng_states"], final_b["rng_states"], "rng_states")

    losses_a, losses_b = step_losses(straight), step_losses(killed)
    resumed_steps = list(range(n, 2 * n))  # the CSV's 0-based step of updates n+1 .. 2n
    assert sorted(losses_b) == resumed_steps, "the resumed run must log exactly steps n+1..2n"
    assert [losses_b[s] for s in resumed_steps] == [losses_a[s] for s in resumed_steps]


def _die_while_writing(path: str) -> None:
    from lightning_w2v.callbacks import AtomicCheckpointIO

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"the first half of a checkpoint")
        f.flush()
        os._exit(3)  # as SIGKILL would: no cleanup

    torch.save = dying_save
    AtomicCheckpointIO().save_checkpoint({"global_step": 2}, path)


def test_atomic_checkpoint_io_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    import multiprocessing

    from lightning_w2v.callbacks import AtomicCheckpointIO

    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    child = multiprocessing.get_context("fork").Process(target=_die_while_writing, args=(str(path),))
    child.start()
    child.join(60)
    assert child.exitcode == 3
    assert load(path)["global_step"] == 1  # the killed writer never touched the real file
    assert len(list(path.parent.glob(".last.ckpt.*.partial"))) == 1  # only its hidden temp file
    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, path)
    assert load(path)["global_step"] == 3
    assert not list(path.parent.glob(".*.partial"))  # the next save cleaned up


@pytest.mark.parametrize("config", ["pretrain/demo.yaml", "pretrain/musicnet_base.yaml", "finetune/demo_pitch.yaml",
                                    "finetune/demo_instrument.yaml", "finetune/nsynth_pitch.yaml",
                                    "finetune/nsynth_instrument.yaml"])
def test_configs_write_atomic_checkpoints_and_save_on_preemption(config):
    import yaml

    from lightning_w2v.runner.configs import expand_config

    trainer: dict = {"callbacks": [], "plugins": []}  # the trainer section the config composes
    for file in expand_config(str(REPO / "conf" / config)):
        section = (yaml.safe_load(file.read_text()) or {}).get("trainer") or {}
        trainer["callbacks"] = list(section.get("callbacks", trainer["callbacks"])) + section.get("callbacks+", [])
        trainer["plugins"] = section.get("plugins", trainer["plugins"])
    callbacks = [c["class_path"] for c in trainer["callbacks"]]
    assert "lightning_w2v.callbacks.PreemptionCheckpoint" in callbacks
    assert [p["class_path"] for p in trainer["plugins"]] == ["lightning_w2v.callbacks.AtomicCheckpointIO"]
    if config.startswith("pretrain/"):
        assert "lightning_w2v.callbacks.RNGStateCallback" in callbacks  # exact resume
