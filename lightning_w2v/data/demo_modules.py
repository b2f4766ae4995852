"""Data modules of the demo: the real MusicNet / NSynth modules on synthetic data they write.

The synthetic sets (:mod:`lightning_w2v.data.demo`) are written on first use, into a
temporary folder that is renamed into place, so an interrupted first run leaves nothing
half-written behind.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from .demo import write_demo_musicnet, write_demo_nsynth
from .musicnet import MusicNetDataModule
from .nsynth import NSynthDataModule


def ensure_demo_data(root: str | Path, writer: Callable[..., Path], marker: str, seed: int = 0) -> Path:
    """Write the synthetic set with ``writer`` into ``root`` unless ``root/marker`` exists."""
    root = Path(root).expanduser()
    if (root / marker).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        writer(staging, seed=seed)
        if root.exists():  # an earlier, unfinished attempt: start again
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def ensure_demo_musicnet(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_demo_musicnet, "musicnet/train_data", seed)


def ensure_demo_nsynth(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_demo_nsynth, "nsynth-test/examples.json", seed)


class DemoMusicNetDataModule(MusicNetDataModule):
    """:class:`MusicNetDataModule` on the synthetic demo set, written to ``root`` on first use."""

    def prepare_data(self) -> None:
        ensure_demo_musicnet(self.root)
        super().prepare_data()


class DemoNSynthDataModule(NSynthDataModule):
    """:class:`NSynthDataModule` on the synthetic demo set, written to ``root`` on first use."""

    def prepare_data(self) -> None:
        ensure_demo_nsynth(self.root)
        super().prepare_data()
