"""Clip-level data sets (genre, tagging, key, emotion, any labelled folder): clips cut into slices.

A subclass lists its clips (:class:`Clip`: an audio file, its split, its target, optionally a
``start`` / ``end`` in seconds) from its data set's own layout; everything else is shared:

- **Audio** goes once through the 16 kHz cache (:mod:`lightning_w2v.data.cache`: any format
  soundfile reads, WAV, AU, FLAC, MP3), so epochs only slice memory-maps.
- **Slices.** Each clip is cut into back-to-back slices of ``slice_seconds`` (the task's
  default, e.g. 5 s); a shorter tail is dropped, and a clip shorter than one slice is an error
  naming it. A slice is a training example; validation and test score whole files, the
  outputs of a file's slices averaged (:mod:`lightning_w2v.tasks.file_scores`).
- **Records as arrays.** The slices of a split are one ``(N, 4)`` int64 array (cache entry,
  start, length, clip), the targets one array: DataLoader workers share them without copying them page by
  page, as they would a list of dicts.

A batch is ``{"waveforms": (B, S), <label key>: (B,) classes or (B, K) numbers, "index": (B,)
slice positions, "file": (B,) clip positions}``; the label key is ``labels`` for classes and
tags, ``targets`` for numbers (the task spec reads the same key). Numbers are z-scored with the
training clips' mean and standard deviation (as MARBLE does for emotion): R², the metric, is the
same on either scale, and a head starting at zero starts at the mean.
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError, DataError
from ..vocabulary import SAMPLE_RATE
from .cache import CacheIndex, build_cache, open_cache

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Clip:
    path: Path  # the audio file
    split: str  # train | valid | test
    target: int | tuple[float, ...]  # a class, or a tuple of numbers (multi-hot tags, or values)
    start: float | None = None  # seconds; None: the file's start
    end: float | None = None  # seconds; None: the file's end

    @property
    def cache_id(self) -> str:
        """A file-name-safe id of the audio file in the cache (shared by clips of one file)."""
        return cache_id_of(self.path)


def cache_id_of(path: Path) -> str:
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(path.resolve()).strip("/"))
    return text[-180:]  # file systems cap names; the tail keeps the distinctive part


class ClipSlices(Dataset):
    """The slices of one split (see the module docstring)."""

    def __init__(self, index: CacheIndex, slices: np.ndarray, targets: np.ndarray, label_key: str) -> None:
        self.index, self.slices, self.targets, self.label_key = index, slices, targets, label_key
        self.with_audio = True  # False once a model holds every slice's features (see serve_audio)

    def serve_audio(self, on: bool) -> None:
        """Whether items carry their audio: a model that has every slice's features on disk needs none, and
        reading it would then be most of an epoch (DataLoader workers see it from the next epoch on)."""
        self.with_audio = on

    def __len__(self) -> int:
        return len(self.slices)

    def feature_identity(self) -> str:
        """A digest of everything a slice's features depend on: each slice's cached audio (its source file's
        path, size and modification time, as cached), start and length, and the sample rate."""
        digest = hashlib.sha256(f"clip slices at {self.index.sample_rate} Hz".encode())
        used = np.unique(self.slices[:, 0])  # this split's files only: another split's change is not ours
        for entry in (self.index.entries[int(i)] for i in used):
            digest.update(f"{entry.source}:{entry.source_size}:{entry.source_mtime_ns}:{entry.num_samples}\n".encode())
        rows = np.ascontiguousarray(self.slices[:, :3], dtype=np.int64).copy()  # file, start, length
        rows[:, 0] = np.searchsorted(used, rows[:, 0])
        digest.update(rows.tobytes())
        return digest.hexdigest()

    def __getitem__(self, i: int) -> dict:
        entry, start, length, clip = (int(v) for v in self.slices[i])
        item = {"target": self.targets[i], "index": i, "file": clip}
        if self.with_audio:
            audio = self.index.load(self.index.entries[entry])[start:start + length]
            item["waveform"] = torch.from_numpy(audio.astype(np.float32) / 32768.0)
        return item


def collate_slices(items: list[dict], label_key: str) -> dict:
    targets = np.stack([item["target"] for item in items])
    batch = {label_key: torch.from_numpy(targets), "index": torch.tensor([item["index"] for item in items]),
             "file": torch.tensor([item["file"] for item in items])}
    if "waveform" in items[0]:  # (see ClipSlices.serve_audio)
        batch["waveforms"] = torch.stack([item["waveform"] for item in items])
    return batch


class _Collate:
    """A picklable collate function (DataLoader workers)."""

    def __init__(self, label_key: str) -> None:
        self.label_key = label_key

    def __call__(self, items: list[dict]) -> dict:
        return collate_slices(items, self.label_key)


class ClipDataModule(pl.LightningDataModule):
    """Clips of a labelled data set, cut into slices (see the module docstring). Subclasses implement
    :meth:`clips` and set ``tasks`` (the task names they serve) and ``default_slice_seconds``."""

    dataset_name = "clips"
    tasks: tuple[str, ...] = ()
    default_slice_seconds = 5.0

    def __init__(self, root: str, task: str, slice_seconds: float | None = None, cache_dir: str | None = None,
                 batch_size: int = 32, num_workers: int = 0, seed: int = 0, pin_memory: bool = False,
                 progress: bool = True) -> None:
        super().__init__()
        if self.tasks and task not in self.tasks:
            raise ConfigError(f"data.init_args.task={task!r}: {type(self).__name__} serves {', '.join(self.tasks)}")
        seconds = self.default_slice_seconds if slice_seconds is None else slice_seconds
        if seconds <= 0:
            raise ConfigError(f"data.init_args.slice_seconds={seconds} must be positive")
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root / "cache_16k"
        self.slice = round(seconds * SAMPLE_RATE)
        self.datasets: dict[str, ClipSlices] = {}
        self._clips: list[Clip] | None = None
        self.save_hyperparameters()

    # -- what a subclass provides ----------------------------------------------------------------
    def clips(self) -> list[Clip]:
        """Every clip of every split, checked (one-line errors naming the file for bad input)."""
        raise NotImplementedError

    @property
    def label_key(self) -> str:
        """``labels`` for classes and tags, ``targets`` for numbers."""
        return "labels"

    # -- shared ------------------------------------------------------------------------------------
    def all_clips(self) -> list[Clip]:
        if self._clips is None:
            self._clips = self.clips()
            for split in SPLITS:
                if not any(c.split == split for c in self._clips):
                    raise DataError(f"{self.dataset_name} under {self.root}: the {split} split holds no clips")
        return self._clips

    @property
    def feature_store_root(self) -> Path:
        """Where a frozen encoder's features of these clips are kept (:mod:`lightning_w2v.tasks.feature_store`)."""
        return self.cache_dir / "features"

    def _sources(self) -> list[tuple[str, Path]]:
        return list(dict.fromkeys((c.cache_id, c.path) for c in self.all_clips()))

    def prepare_data(self) -> None:
        """Build (or update) the 16 kHz cache of every clip's audio."""
        build_cache(self._sources(), self.cache_dir, SAMPLE_RATE, self.hparams.progress)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",),
                  "predict": ("test",)}.get(stage or "", SPLITS)
        clips = self.all_clips()
        index = open_cache(self._sources(), self.cache_dir, SAMPLE_RATE)
        position = {e.id: i for i, e in enumerate(index.entries)}
        for split in wanted:
            if split not in self.datasets:
                mine = [(i, c) for i, c in enumerate(clips) if c.split == split]
                self.datasets[split] = self._split(split, mine, index, position)

    def _split(self, split: str, clips: list[tuple[int, Clip]], index: CacheIndex,
               position: dict[str, int]) -> ClipSlices:
        rows, targets = [], []
        for number, clip in clips:
            entry = position[clip.cache_id]
            length = index.entries[entry].num_samples
            start = 0 if clip.start is None else round(clip.start * SAMPLE_RATE)
            end = length if clip.end is None else min(length, round(clip.end * SAMPLE_RATE))
            count = (end - start) // self.slice
            if count < 1:
                raise DataError(f"{clip.path}: the clip ({(end - start) / SAMPLE_RATE:.2f} s from "
                                f"{start / SAMPLE_RATE:.2f} s) is shorter than one slice of "
                                f"{self.slice / SAMPLE_RATE:g} s; lower data.init_args.slice_seconds, or remove "
                                "the clip")
            for k in range(count):
                rows.append((entry, start + k * self.slice, self.slice, number))
                targets.append(clip.target)
        slices = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
        target_array = np.asarray(targets, dtype=np.int64 if isinstance(targets[0], int) else np.float32)
        if self.label_key == "targets":  # numbers: z-scored with the training clips' statistics (R² is unchanged)
            mean, std = self.target_statistics()
            target_array = ((target_array - mean) / std).astype(np.float32)
        log.info("%s %s: %d clips, %d slices of %.1f s", self.dataset_name, split, len(clips), len(slices),
                 self.slice / SAMPLE_RATE)
        return ClipSlices(index, slices, target_array, self.label_key)

    def target_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean and standard deviation of each number over the training clips (a constant one: 1)."""
        train = np.asarray([c.target for c in self.all_clips() if c.split == "train"], dtype=np.float64)
        std = train.std(axis=0)
        return train.mean(axis=0), np.where(std > 0, std, 1.0)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "valid": "validate", "test": "test"}[split])
        return DataLoader(self.datasets[split], batch_size=self.hparams.batch_size, shuffle=shuffle,
                          collate_fn=_Collate(self.label_key), num_workers=self.hparams.num_workers,
                          pin_memory=self.hparams.pin_memory and torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
