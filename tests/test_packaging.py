"""The installed product: a non-editable install runs from any folder, with its configs inside it."""
from __future__ import annotations

import os
import subprocess
import zipfile

MAX_DEMO_LOG_LINES = 300


def run(installed, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed["command"]), *args], cwd=installed["cwd"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "WANDB_MODE": "offline"})


def test_the_wheel_carries_the_configs(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for config in ("pretrain/demo.yaml", "pretrain/musicnet_base.yaml", "finetune/policy/fe.yaml",
                   "trainer/cpu.yaml", "callbacks/finetune.yaml"):
        assert f"lightning_w2v/conf/{config}" in names, config


def test_the_installed_package_is_the_one_that_runs(installed):
    where = subprocess.run([str(installed["python"]), "-c", "import lightning_w2v, sys; print(lightning_w2v.__file__)"],
                           cwd=installed["cwd"], capture_output=True, text=True, check=True).stdout
    assert "site-packages" in where and str(installed["python"].parent.parent) in where
    assert run(installed, "--version").stdout.startswith("lightning-w2v ")


def test_fit_from_any_folder_with_a_named_packaged_config(installed):
    done = run(installed, "fit", "--config", "pretrain/demo", "--data.init_args.root=data/musicnet",
               "--probe.notes=null", "--trainer.max_steps=2", "--trainer.default_root_dir=run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (installed["cwd"] / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "Traceback" not in done.stderr


def test_the_quick_demo_runs_and_its_log_is_short(installed_demo):
    assert installed_demo["returncode"] == 0, installed_demo["log"][-6000:]
    lines = installed_demo["log"].splitlines()
    assert len(lines) <= MAX_DEMO_LOG_LINES, len(lines)
    assert "should take" in installed_demo["log"].splitlines()[0]  # it says how long, first
