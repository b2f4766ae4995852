"""MusicNet for wav2vec 2.0 pre-training: the official recordings through the 16 kHz cache.

The cache, the 20 s segments (hop 10 s), the equal-length random crops, batches by seconds
of audio and mid-epoch resume are :class:`~lightning_w2v.data.cached.CachedAudioDataModule`'s.
This module finds MusicNet's recordings: ``train_data/*.wav`` for training and the 10
official test recordings (``test_data/``) for validation, in the archive's layout or the
Kaggle mirror's. Labels (``*_labels/*.csv``) are not needed for pre-training and are not read.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import DataNotFoundError
from .cached import CachedAudioDataModule, CacheFileError, CropSettings, SegmentCrops  # noqa: F401
from .formats import MUSICNET_SPLITS

log = logging.getLogger(__name__)

SPLITS = MUSICNET_SPLITS


class MusicNetNotFoundError(DataNotFoundError):
    """The MusicNet folders are not under the data root; the message says where it looked."""


def find_musicnet_dir(root: str | os.PathLike) -> Path:
    """The folder holding ``train_data/``.

    Tried in order: ``root`` itself, ``root/musicnet`` (the archive's layout) and
    ``root/musicnet/musicnet`` (the Kaggle mirror's nesting).
    """
    root = Path(root).expanduser()
    for cand in (root, root / "musicnet", root / "musicnet" / "musicnet"):
        if any((cand / "train_data").glob("*.wav")):
            return cand
    raise MusicNetNotFoundError(
        f"MusicNet not found under {root}. Expected {root}/musicnet/train_data/*.wav and "
        f"test_data/*.wav (the layout of musicnet.tar.gz, Zenodo record 5120004), or the "
        f"Kaggle layout {root}/musicnet/musicnet/train_data, or a root that holds train_data "
        f"itself. Download it with `lightning-w2v data download musicnet --root {root}`, or "
        "make a small synthetic stand-in with `lightning-w2v demo`."
    )


def list_recordings(base: Path, split: str) -> list[tuple[str, Path]]:
    """``(rec_id, wav)`` of one split, ids as ``<split>_<file stem>``, sorted by stem."""
    wavs = sorted((base / f"{split}_data").glob("*.wav"), key=lambda p: (len(p.stem), p.stem))
    return [(f"{split}_{p.stem}", p) for p in wavs]


class MusicNetDataModule(CachedAudioDataModule):
    """MusicNet pre-training data (see the module docstring).

    Args:
        root: data root (see :func:`find_musicnet_dir` for the layouts found).
        cache_dir: where the 16 kHz cache lives; default ``<root>/cache_16k``.
        max_sample_size, min_sample_size: crop at most / segments at least this many samples.
        segment_seconds, hop_seconds: segmentation of the training recordings.
        max_batch_seconds: audio per batch per device (87.5 s = 1.4M samples, as fairseq).
        val_crop_seconds: length of the fixed validation crops.
        seed: batch order and crops are deterministic from it (and the epoch).
        max_recordings: use only the first N recordings of each split (quick runs).
    """

    dataset_name = "MusicNet"

    def rebuild_command(self) -> str:
        cache = "" if self.cache_dir == self.root / "cache_16k" else f" --cache-dir {self.cache_dir}"
        return f"lightning-w2v data prepare musicnet --root {self.root}{cache}"

    def __init__(
        self,
        root: str,
        cache_dir: str | None = None,
        max_sample_size: int = 250000,
        min_sample_size: int = 32000,
        segment_seconds: float = 20.0,
        hop_seconds: float = 10.0,
        max_batch_seconds: float = 87.5,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        val_crop_seconds: float = 10.0,
        seed: int = 0,
        max_recordings: int | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__(root, cache_dir, CropSettings.take(locals()))
        self.save_hyperparameters()

    # -- data discovery ---------------------------------------------------------------------
    def sources(self) -> dict[str, list[tuple[str, Path]]]:
        """``{"train": [(rec_id, wav)], "test": [...]}``, limited by ``max_recordings``."""
        base = find_musicnet_dir(self.root)
        out = {s: list_recordings(base, s) for s in SPLITS}
        if not out["test"]:
            raise MusicNetNotFoundError(
                f"no validation recordings: {base}/test_data/*.wav is missing or empty; "
                "MusicNet's archive ships 10 test recordings there (re-extract it)"
            )
        n = self.hparams.max_recordings
        return {s: v[:n] for s, v in out.items()} if n else out

    def split_sources(self) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
        """Training recordings, and the official test recordings for validation."""
        src = self.sources()
        return src["train"], src["test"]
