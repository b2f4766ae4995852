"""Shared pytest fixtures: demo data sets and a tiny pre-training checkpoint, made once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never talk to W&B servers and never prompt.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _seed_everything():
    import torch

    torch.manual_seed(0)
    yield


@pytest.fixture
def fixed_inputs():
    """``make(model, batch, samples, seed) -> (waveforms, mask, negatives)``, all seeded.

    With mask and negatives given, two implementations of the same model can be compared
    step for step.
    """
    import torch

    def make(model, batch: int = 2, samples: int = 16000, seed: int = 1):
        generator = torch.Generator().manual_seed(seed)
        waveforms = torch.randn(batch, samples, generator=generator)
        mask = model.compute_mask(batch, model.config.num_frames(samples), generator=generator)
        return waveforms, mask, model.sample_negatives(mask, generator=generator)

    return make


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Synthetic MusicNet (root/musicnet), NSynth (root/nsynth), MAESTRO (root/maestro), GTZAN, MagnaTagATune,
    GiantSteps key and Emomusic (root/gtzan, mtt, giantsteps, emomusic) in their on-disk formats, and labelled
    clips with a manifest of each kind (root/manifest)."""
    from lightning_w2v.data.demo_modules import (
        ensure_demo_emomusic,
        ensure_demo_giantsteps,
        ensure_demo_gtzan,
        ensure_demo_maestro,
        ensure_demo_manifests,
        ensure_demo_mtt,
        ensure_demo_musicnet,
        ensure_demo_nsynth,
    )

    root = tmp_path_factory.mktemp("demo_data")
    ensure_demo_musicnet(root / "musicnet")
    ensure_demo_nsynth(root / "nsynth")
    ensure_demo_maestro(root / "maestro")
    ensure_demo_gtzan(root / "gtzan")
    ensure_demo_manifests(root / "manifest")
    for name, writer in (("mtt", ensure_demo_mtt), ("giantsteps", ensure_demo_giantsteps),
                         ("emomusic", ensure_demo_emomusic)):
        writer(root / name)
    return root


@pytest.fixture(scope="session")
def tiny_pretrain_ckpt(tmp_path_factory) -> Path:
    """A Lightning checkpoint of an (untrained) tiny PretrainModule, written by a real Trainer."""
    import pytorch_lightning as pl
    import torch

    from lightning_w2v import PretrainModule

    module = PretrainModule(preset="tiny", warmup_steps=1)
    batch = {"waveforms": torch.randn(2, 16000)}
    loader = torch.utils.data.DataLoader([batch["waveforms"][0], batch["waveforms"][1]], batch_size=2,
                                         collate_fn=lambda xs: {"waveforms": torch.stack(xs)})
    out = tmp_path_factory.mktemp("pretrain")
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=out)
    trainer.fit(module, loader)
    path = out / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> dict[str, Path]:
    """The package as a user gets it: a wheel built from this tree and installed, not editable,
    into a fresh environment (which borrows this one's torch and other dependencies), run from a
    folder that is not the checkout. Returns its python, its console script and that folder."""
    import subprocess
    import sys
    import sysconfig

    base = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(base / "dist"), str(REPO)], check=True, capture_output=True)
    wheel = next((base / "dist").glob("lightning_w2v-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # This environment's packages (torch, Lightning...) as a plain path: its own .pth files, the
    # editable install of this checkout among them, are not processed there.
    (Path(purelib) / "borrowed_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return {"python": python, "command": venv / "bin" / "lightning-w2v", "cwd": elsewhere, "wheel": wheel}


@pytest.fixture(scope="session")
def installed_demo(installed) -> dict[str, object]:
    """``lightning-w2v demo --quick`` of the installed package, from a folder outside the checkout."""
    import subprocess

    out = installed["cwd"] / "demo_out"
    done = subprocess.run([str(installed["command"]), "demo", "--quick", "--out", str(out)], cwd=installed["cwd"],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "WANDB_MODE": "offline"})
    return {"out": out, "returncode": done.returncode, "log": done.stdout + done.stderr}
