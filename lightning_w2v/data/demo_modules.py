"""Data modules of the demo: the real MusicNet / NSynth modules on synthetic data they write.

The synthetic sets (:mod:`lightning_w2v.data.demo`) are written on first use, into a
temporary folder that is renamed into place, so an interrupted first run leaves nothing
half-written behind. A root that already holds anything else is refused, never replaced.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..errors import DiskError
from ..files import claim_folder, is_ours
from ..files.ownership import mark
from .demo import write_demo_musicnet, write_demo_nsynth
from .demo_maestro import write_demo_maestro
from .musicnet import MusicNetDataModule
from .nsynth import NSynthDataModule
from .sets.emomusic import write_synthetic_emomusic
from .sets.giantsteps import write_synthetic_giantsteps
from .sets.gtzan import write_synthetic_gtzan
from .sets.manifest import write_synthetic_manifests
from .sets.mtt import write_synthetic_mtt
from .transcription import MusicNetTranscriptionDataModule

STALE_STAGING_S = 3600.0


def _legacy_demo_root(root: Path, complete: str) -> bool:
    """A demo set written by 0.1, before markers: its README says so and its data is there."""
    try:
        readme = (root / "README.txt").read_text(errors="replace")
    except OSError:
        return False
    return readme.startswith("SYNTHETIC DEMO DATA") and (root / complete).exists()


def _remove_stale_staging(root: Path) -> None:
    """Staging folders of killed earlier attempts: ours by name *and* by their marker."""
    for staging in root.parent.glob(f".{root.name}.*.staging"):
        try:
            old = time.time() - staging.stat().st_mtime > STALE_STAGING_S
        except OSError:
            continue
        if old and is_ours(staging, "staging"):
            shutil.rmtree(staging, ignore_errors=True)


def ensure_demo_data(root: str | Path, writer: Callable[..., Path], kind: str, complete: str,
                     seed: int = 0) -> Path:
    """Write the synthetic set with ``writer`` into ``root`` unless it is already there.

    ``root`` must be new, empty, or a demo set of ``kind`` written earlier (``complete`` is a
    path inside it that only a finished set has, for sets written before markers existed).
    Any other folder is the user's: a :class:`DiskError` names it and nothing is touched.
    The set is written into a staging folder beside ``root`` and renamed into place, marker
    included, so an interrupted first run leaves no half-written set behind.
    """
    root = Path(root).expanduser()
    hint = "point data.init_args.root at a new or empty folder for the synthetic demo data"
    if is_ours(root, kind):
        return root
    if root.is_dir() and any(root.iterdir()):
        if _legacy_demo_root(root, complete):
            return claim_folder(root, kind, adopt=lambda _: True)
        return claim_folder(root, kind, hint=hint)  # raises: not empty, not ours
    if root.exists() and not root.is_dir():
        raise DiskError(f"{root} is a file, not a folder; {hint}")
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".staging", dir=root.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the set should not be
    try:
        mark(staging, "staging")
        writer(staging, seed=seed)
        mark(staging, kind)  # the marker of a finished set, written last
        if root.is_dir():
            root.rmdir()  # empty (checked above); a folder that filled up meanwhile raises
        staging.rename(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)  # our own staging folder
    return root


def ensure_demo_musicnet(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_demo_musicnet, "demo-musicnet", "musicnet/train_data", seed)


def ensure_demo_nsynth(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_demo_nsynth, "demo-nsynth", "nsynth-test/examples.json", seed)


def ensure_demo_maestro(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_demo_maestro, "demo-maestro", "maestro-v3.0.0/maestro-v3.0.0.csv", seed)


def ensure_demo_gtzan(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_synthetic_gtzan, "demo-gtzan", "genres/split.tsv", seed)


def ensure_demo_mtt(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_synthetic_mtt, "demo-mtt", "split.tsv", seed)


def ensure_demo_giantsteps(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_synthetic_giantsteps, "demo-giantsteps",
                            "giantsteps-mtg-key-dataset/annotations/beatport_metadata.txt", seed)


def ensure_demo_emomusic(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_synthetic_emomusic, "demo-emomusic", "annotations/songs_info.csv", seed)


def ensure_demo_manifests(root: str | Path, seed: int = 0) -> Path:
    return ensure_demo_data(root, write_synthetic_manifests, "demo-manifest", "targets.jsonl", seed)


# What `lightning-w2v data synth <name>` writes: a synthetic stand-in in the data set's own layout
SYNTHETIC_WRITERS: dict[str, Callable[..., Path]] = {
    "musicnet": ensure_demo_musicnet, "nsynth": ensure_demo_nsynth, "maestro": ensure_demo_maestro,
    "gtzan": ensure_demo_gtzan, "mtt": ensure_demo_mtt, "giantsteps": ensure_demo_giantsteps,
    "emomusic": ensure_demo_emomusic, "manifest": ensure_demo_manifests}


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


class DemoMusicNetTranscriptionDataModule(MusicNetTranscriptionDataModule):
    """:class:`MusicNetTranscriptionDataModule` on the synthetic demo MusicNet (its label CSVs included),
    written to ``root`` on first use."""

    def prepare_data(self) -> None:
        ensure_demo_musicnet(self.root)
        super().prepare_data()
