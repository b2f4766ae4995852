"""A user's bad input through the real command (``lightning-w2v fit ...``): one clear error, nothing lost.

Each test runs the command's own entry point in this process (``lightning_w2v.commands.main``,
what the console script calls) on data in the exact on-disk formats, and checks the exit
code, the one ``error:`` line, and what is on disk afterwards.
"""
from __future__ import annotations

import errno
import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_w2v.checkpoints import read_checkpoint
from lightning_w2v.commands import main
from lightning_w2v.runner import run_cli as cli_main

CONF = Path(__file__).resolve().parent.parent / "conf"
PRETRAIN = ["--config", str(CONF / "pretrain" / "demo.yaml"), "--probe.notes=null"]  # probes: test_probe.py
QUIET = ["--trainer.enable_progress_bar=false"]


def finetune_args(task: str = "pitch", policy: str = "fe") -> list[str]:
    return ["--config", str(CONF / "finetune" / f"demo_{task}.yaml"),
            "--config", str(CONF / "finetune" / "policy" / f"{policy}.yaml")]


def run(capsys, *args: str) -> tuple[int, str]:
    """``lightning-w2v ARGS``: the exit code and what it printed to stderr."""
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def error_line(stderr: str) -> str:
    """The command's one ``error:`` line (Lightning's own log lines may come before it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def checkpoints(demo_root, tmp_path_factory) -> dict[str, Path]:
    """A pre-training and an FE pitch fine-tuning checkpoint, each written by the command."""
    out = tmp_path_factory.mktemp("ckpts")
    cli_main(["fit", *PRETRAIN, f"--data.init_args.root={demo_root / 'musicnet'}", "--trainer.max_steps=2",
              f"--trainer.default_root_dir={out / 'pretrain'}", *QUIET])
    pretrain = out / "pretrain" / "checkpoints" / "last.ckpt"
    cli_main(["fit", *finetune_args(), f"--model.init_args.encoder.path={pretrain}",
              f"--data.init_args.root={demo_root / 'nsynth'}", "--trainer.max_epochs=1",
              "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
              f"--trainer.default_root_dir={out / 'finetune'}", *QUIET])
    return {"pretrain": pretrain, "finetune": out / "finetune" / "checkpoints" / "last.ckpt"}


# --------------------------------------------------------------------------- the user's files
@pytest.mark.parametrize("config,partial", [("pretrain", "musicnet/train_data"), ("finetune", "nsynth-test/audio")])
def test_a_demo_root_holding_the_users_files_is_refused_and_left_untouched(tmp_path, capsys, config, partial,
                                                                           checkpoints):
    root = tmp_path / "my_data"
    (root / partial).mkdir(parents=True)
    (root / "thesis.tex").write_text("years of work")
    before = listing(tmp_path)
    args = PRETRAIN if config == "pretrain" else [*finetune_args(),
                                                  f"--model.init_args.encoder.path={checkpoints['pretrain']}"]
    code, err = run(capsys, "fit", *args, f"--data.init_args.root={root}",
                    f"--trainer.default_root_dir={tmp_path / 'run'}", "--trainer.max_steps=1", *QUIET)
    line = error_line(err)
    assert code == 2
    assert str(root) in line and "not empty" in line and "nothing in it was changed" in line
    assert (root / "thesis.tex").read_text() == "years of work"
    assert listing(tmp_path) == before  # no demo data, no staging folder, no run folder


def test_a_run_folder_holding_the_users_files_is_refused(tmp_path, capsys, demo_root):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("mine")
    code, err = run(capsys, "fit", *PRETRAIN, f"--data.init_args.root={demo_root / 'musicnet'}",
                    f"--trainer.default_root_dir={home}", "--trainer.max_steps=1", *QUIET)
    assert code == 2 and str(home) in error_line(err) and "--trainer.default_root_dir" in error_line(err)
    assert listing(home) == ["config.yaml"] and (home / "config.yaml").read_text() == "mine"


# --------------------------------------------------------------------------- wrong checkpoints
def _wrong_checkpoint_cases(ckpts: dict[str, Path], tmp: Path) -> dict[str, tuple[list[str], str]]:
    not_a_ckpt = tmp / "notes.wav"
    not_a_ckpt.write_bytes(b"RIFF....WAVEfmt ")
    pre, fine = ckpts["pretrain"], ckpts["finetune"]
    encoder = [f"--model.init_args.encoder.path={pre}"]
    return {
        "fine-tuning checkpoint to a pre-training run": (
            [*PRETRAIN, f"--ckpt_path={fine}"],
            "is a fine-tuning checkpoint (FinetuneModule) for task pitch, policy FE, "
            "but this run is a pre-training run"),
        "terminal architecture against the checkpoint's": (
            [*PRETRAIN, "--model.init_args.preset=base", f"--ckpt_path={pre}"],
            "has another architecture than this run"),
        "pre-training checkpoint to a fine-tuning run": (
            [*finetune_args(), *encoder, f"--ckpt_path={pre}"], "is a pre-training checkpoint (PretrainModule), "
                                                                 "but this run is a fine-tuning run"),
        "another policy": ([*finetune_args("pitch", "ft1"), *encoder, f"--ckpt_path={fine}"], "policy: 'FE' vs 'FT1'"),
        "another task": ([*finetune_args("instrument", "fe"), *encoder, f"--ckpt_path={fine}"],
                         "task: 'pitch' vs 'instrument'"),
        "encoder path is not a checkpoint": (
            [*finetune_args(), f"--model.init_args.encoder.path={not_a_ckpt}"], "is not a readable checkpoint"),
        "encoder path does not exist": (
            [*finetune_args(), f"--model.init_args.encoder.path={tmp / 'nope.ckpt'}"], "does not exist"),
        "full-state continuation from a fine-tuning checkpoint": (
            [*PRETRAIN, "--model.init_args.init_mode=full-state", "--model.init_args.init_from.source=checkpoint",
             f"--model.init_args.init_from.path={fine}"], "model.init_args.init_from.path"),
    }


CASES = ["fine-tuning checkpoint to a pre-training run", "terminal architecture against the checkpoint's",
         "pre-training checkpoint to a fine-tuning run", "another policy", "another task",
         "encoder path is not a checkpoint", "encoder path does not exist",
         "full-state continuation from a fine-tuning checkpoint"]


@pytest.mark.parametrize("case", CASES)
def test_a_wrong_checkpoint_is_refused_before_the_first_step(case, checkpoints, demo_root, tmp_path, capsys):
    args, expected = _wrong_checkpoint_cases(checkpoints, tmp_path)[case]
    data = demo_root / ("musicnet" if args[1].endswith("demo.yaml") else "nsynth")
    run_dir = tmp_path / "run"
    code, err = run(capsys, "fit", *args, f"--data.init_args.root={data}", f"--trainer.default_root_dir={run_dir}",
                    "--trainer.max_steps=2", *QUIET)
    line = error_line(err)
    assert code == 2, err
    assert expected in line, line
    assert not list(run_dir.glob("**/*.ckpt"))  # nothing trained, nothing saved


# --------------------------------------------------------------------------- disks
class FillDisk(pl.Callback):
    """At the start of the second epoch, fill the run's file system (a small tmpfs) to the brim."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            root = Path(trainer.default_root_dir)
            with open(root / "filler.bin", "wb") as handle:
                try:
                    while True:
                        handle.write(b"\0" * 65536)
                        handle.flush()
                except OSError as error:
                    assert error.errno == errno.ENOSPC


class InjectDiskFull(pl.Callback):
    """Where mounting a tmpfs is not allowed: from the second epoch on, torch.save hits ENOSPC."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            import lightning_w2v.callbacks as callbacks

            def full(*args, **kwargs):
                try:
                    raise OSError(errno.ENOSPC, "No space left on device")
                except OSError as error:
                    raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos") from error

            callbacks.torch.save = full  # restored by the test


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_full_disk_stops_with_one_line_and_the_last_checkpoint_stays_loadable(checkpoints, demo_root, tmp_path,
                                                                                capsys, monkeypatch):
    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, "6m")
    callback = "FillDisk" if mounted else "InjectDiskFull"
    if not mounted:
        monkeypatch.setattr("lightning_w2v.callbacks.torch.save", torch.save)  # undo the injection afterwards
    run_dir = disk / "run"
    try:
        code, err = run(capsys, "fit", *finetune_args(), f"--model.init_args.encoder.path={checkpoints['pretrain']}",
                        f"--data.init_args.root={demo_root / 'nsynth'}", f"--trainer.default_root_dir={run_dir}",
                        "--trainer.max_epochs=3", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
                        f"--trainer.callbacks+={__name__}.{callback}", "--test_after_fit=false", *QUIET)
        line = error_line(err)
        assert code == 2
        assert "is full" in line and "free" in line and "is intact" in line, line
        if mounted:
            assert f"the file system at {disk}" in line
        last = run_dir / "checkpoints" / "last.ckpt"
        checkpoint = read_checkpoint(last)
        assert checkpoint.kind == "finetune" and checkpoint.content["epoch"] == 0
        del checkpoint  # it memory-maps the file, which would keep the tmpfs busy
        assert not list((run_dir / "checkpoints").glob(".*.partial"))  # no half-written file left
    finally:
        if mounted:
            gc.collect()
            if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(disk)], check=False)  # detached once nothing uses it


def test_an_unwritable_run_folder_is_one_error_and_wandb_writes_nothing(demo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tmp_wandb = Path("/tmp/wandb")
    before = listing(tmp_wandb) if tmp_wandb.exists() else None
    code, err = run(capsys, "fit", *PRETRAIN, f"--data.init_args.root={demo_root / 'musicnet'}",
                    "--trainer.default_root_dir=/proc/lightning-w2v-test/run",
                    "--trainer.logger=lightning_w2v.callbacks.WandbLogger",
                    "--trainer.logger.init_args.project=lightning-w2v-test", "--trainer.max_steps=1", *QUIET)
    line = error_line(err)
    assert code == 2 and "/proc/lightning-w2v-test/run" in line and "not writable" in line
    assert (listing(tmp_wandb) if tmp_wandb.exists() else None) == before
    assert not list(tmp_path.iterdir())  # no ./wandb either


def test_a_failed_data_check_leaves_no_wandb_run(checkpoints, demo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nsynth = tmp_path / "nsynth"
    shutil.copytree(demo_root / "nsynth", nsynth)
    broken = sorted((nsynth / "nsynth-valid" / "audio").glob("*.wav"))[3]
    os.truncate(broken, broken.stat().st_size // 2)
    run_dir = tmp_path / "run"
    code, err = run(capsys, "fit", *finetune_args(), f"--model.init_args.encoder.path={checkpoints['pretrain']}",
                    f"--data.init_args.root={nsynth}", f"--trainer.default_root_dir={run_dir}",
                    "--trainer.logger=lightning_w2v.callbacks.WandbLogger",
                    "--trainer.logger.init_args.project=lightning-w2v-test", *QUIET)
    assert code == 2
    assert broken.name in err and "truncated" in err
    assert not run_dir.exists()  # the run folder is only made once the data is good
    assert not list(tmp_path.glob("**/wandb"))


# --------------------------------------------------------------------------- short runs, required values, LRs
def test_fine_tuning_shorter_than_an_epoch_ends_cleanly(checkpoints, demo_root, tmp_path, capsys):
    code, err = run(capsys, "fit", *finetune_args(), f"--model.init_args.encoder.path={checkpoints['pretrain']}",
                    f"--data.init_args.root={demo_root / 'nsynth'}", f"--trainer.default_root_dir={tmp_path}",
                    "--trainer.max_steps=2", "--trainer.limit_test_batches=1", *QUIET)
    assert code == 0, err
    assert (tmp_path / "test_metrics.json").is_file()  # tested the final weights


def test_required_values_are_named_before_anything_is_built(tmp_path, capsys):
    code, err = run(capsys, "fit", "--config", str(CONF / "finetune" / "nsynth_pitch.yaml"),
                    "--config", str(CONF / "finetune" / "policy" / "fe.yaml"),
                    f"--trainer.default_root_dir={tmp_path / 'run'}")
    line = error_line(err)
    assert code == 2
    assert "set --data.init_args.root" in line and "set --model.init_args.encoder.path" in line
    assert not (tmp_path / "run").exists()


def test_model_and_data_tasks_that_differ_are_caught_before_the_run_starts(checkpoints, demo_root, tmp_path, capsys):
    """The task is written once, as the data's; a model task set as well must agree with it."""
    code, err = run(capsys, "fit", *finetune_args(), f"--model.init_args.encoder.path={checkpoints['pretrain']}",
                    f"--data.init_args.root={demo_root / 'nsynth'}", "--data.init_args.task=instrument",
                    "--model.init_args.task=pitch", f"--trainer.default_root_dir={tmp_path / 'run'}", *QUIET)
    line = error_line(err)
    assert code == 2 and "data.init_args.task='instrument'" in line and "model.init_args.task='pitch'" in line
    assert not (tmp_path / "run").exists()


def test_the_model_takes_the_data_task(checkpoints, demo_root, tmp_path):
    cli = cli_main([*finetune_args(), f"--model.init_args.encoder.path={checkpoints['pretrain']}",
                    f"--data.init_args.root={demo_root / 'nsynth'}", "--data.init_args.task=instrument",
                    f"--trainer.default_root_dir={tmp_path / 'run'}", *QUIET], run=False)
    assert cli.model.hparams.task == "instrument" and cli.model.num_classes == 11


@pytest.mark.parametrize("fragments,override,expected", [
    (["fe"], "--model.init_args.policy=FT1", {"head": 1e-4, "encoder": 1e-5}),
    (["ft1", "fe"], None, {"head": 1e-3}),
    (["fe", "ft2"], None, {"head": 1e-4, "encoder": 1e-5}),
])
def test_learning_rates_follow_the_policy_whatever_the_order(fragments, override, expected, checkpoints, demo_root,
                                                             tmp_path):
    args = ["fit", "--config", str(CONF / "finetune" / "demo_pitch.yaml")]
    for fragment in fragments:
        args += ["--config", str(CONF / "finetune" / "policy" / f"{fragment}.yaml")]
    args += [f"--model.init_args.encoder.path={checkpoints['pretrain']}",
             f"--data.init_args.root={demo_root / 'nsynth'}", f"--trainer.default_root_dir={tmp_path}",
             "--trainer.max_steps=1", "--test_after_fit=false", *QUIET]
    cli = cli_main(args + ([override] if override else []))
    assert cli.trainer.global_step == 1
    groups = {group["name"]: group["lr"] for group in cli.trainer.optimizers[0].param_groups}
    assert groups == expected


# --------------------------------------------------------------------------- the command's error contract
@pytest.mark.parametrize("where", ["config", "argument"])
def test_a_class_path_that_moved_since_0_1_is_named_with_its_new_place(tmp_path, capsys, where):
    logger = "lightning_w2v.loggers.WandbLogger"
    if where == "config":
        old_config = tmp_path / "old.yaml"
        old_config.write_text(f"trainer:\n  logger:\n    class_path: {logger}\n")
        extra = ["--config", str(old_config)]
    else:
        extra = [f"--trainer.logger={logger}"]
    code, err = run(capsys, "fit", *PRETRAIN, *extra, f"--trainer.default_root_dir={tmp_path / 'run'}")
    assert code == 2
    line = error_line(err)
    assert logger in line and "lightning_w2v.callbacks.WandbLogger" in line
    assert where != "config" or str(tmp_path / "old.yaml") in line
    assert not (tmp_path / "run").exists()


def test_errors_print_one_line_and_the_debug_flag_shows_the_traceback(tmp_path, capsys, monkeypatch):
    command = ["fit", "--config", str(CONF / "finetune" / "nsynth_pitch.yaml"),
               f"--trainer.default_root_dir={tmp_path}"]
    monkeypatch.delenv("LIGHTNING_W2V_DEBUG", raising=False)
    code, err = run(capsys, *command)  # in this process: the same main() the entry points call
    assert code == 2
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("error: required value(s) not set: set --")
    assert "Traceback" not in err
    # the flag lets the exception out: Python prints its traceback as the process ends (the real entry point)
    env = {**{k: v for k, v in os.environ.items() if k != "LIGHTNING_W2V_DEBUG"}, "LIGHTNING_W2V_DEBUG": "1"}
    debug = subprocess.run([sys.executable, "-m", "lightning_w2v", *command], capture_output=True, text=True,
                           env=env, cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
