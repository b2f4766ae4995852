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
    """Synthetic MusicNet (root/musicnet) and NSynth (root/nsynth) in their on-disk formats."""
    from lightning_w2v.data.demo_modules import ensure_demo_musicnet, ensure_demo_nsynth

    root = tmp_path_factory.mktemp("demo_data")
    ensure_demo_musicnet(root / "musicnet")
    ensure_demo_nsynth(root / "nsynth")
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
