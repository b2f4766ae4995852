"""Polyphonic transcription data: MusicNet and MAESTRO recordings with their notes.

Audio comes from the same 16 kHz cache pre-training uses (:mod:`lightning_w2v.data.cache`;
for MusicNet the very same files, under ``<root>/cache_16k``). Batches carry the audio and
the notes; the task spec turns notes into frame targets at the encoder's own frames.

Splits:

- **train**: every training recording is cut into back-to-back windows of
  ``window_seconds`` (10 s) starting at a seeded random offset within its first window, so
  each seed sees other crops; a shorter tail is dropped. The windows are the same in every
  epoch (a frozen encoder's features can be kept) and shuffled each epoch.
- **valid**: MusicNet has no validation split, so ``val_recordings`` training recordings
  (default 8% of them, at least one), drawn with ``seed``, are held out from training and cut
  into windows from their start. MAESTRO uses its own ``validation`` split.
- **test**: MusicNet's 10 official test recordings (MAESTRO: its ``test`` split), whole,
  one per batch; the model runs over each in overlapping windows.

``train_minutes`` keeps only as many training windows (drawn with ``seed``) as hold that
many minutes of labelled audio: label efficiency in minutes.

A batch is ``{"waveforms": (B, S), "notes": (N, 5) [item, onset s, offset s, MIDI pitch,
instrument program], "index": (B,), "recording": [ids]}``.

Bad input, each one line before training (``setup``): a missing, empty or malformed label
CSV (file and line named), a note beyond the end of its recording, an unknown instrument
code, an unreadable MIDI file, a MAESTRO CSV without a ``split`` column or naming a missing
file, a recording without labels.
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError, DataError
from ..vocabulary import SAMPLE_RATE
from .cache import CacheIndex, build_cache, open_cache
from .maestro import read_maestro_index, read_midi_notes
from .musicnet import find_musicnet_dir, list_recordings
from .notes import LabelFileError, Notes, read_musicnet_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recording:
    id: str  # the cache's id
    audio: Path
    notes: Path  # the label CSV or MIDI file


@dataclass(frozen=True)
class Window:
    recording: int  # position in the split's recordings
    start: int  # samples at 16 kHz
    length: int  # samples; the whole recording for the test split


class TranscriptionWindows(Dataset):
    """Items ``{"waveform", "notes", "index", "recording"}`` of one split (see the module docstring)."""

    def __init__(self, index: CacheIndex, notes: list[Notes], windows: list[Window]) -> None:
        self.index, self.notes, self.windows = index, notes, windows

    def __len__(self) -> int:
        return len(self.windows)

    def seconds(self) -> float:
        return sum(w.length for w in self.windows) / SAMPLE_RATE

    def __getitem__(self, i: int) -> dict:
        window = self.windows[i]
        entry = self.index.entries[window.recording]
        audio = self.index.load(entry)[window.start:window.start + window.length]  # int16 memmap slice
        start = window.start / SAMPLE_RATE
        notes = self.notes[window.recording].window(start, start + window.length / SAMPLE_RATE)
        return {"waveform": torch.from_numpy(audio.astype(np.float32) / 32768.0), "notes": notes.as_array(),
                "index": i, "recording": entry.id}


def collate_windows(items: list[dict]) -> dict:
    """Stack windows (zero-padded to the longest, with ``lengths``) and flatten their notes."""
    longest = max(len(item["waveform"]) for item in items)
    waveforms = torch.zeros(len(items), longest)
    for row, item in enumerate(items):
        waveforms[row, :len(item["waveform"])] = item["waveform"]
    notes = [np.concatenate([np.full((len(item["notes"]), 1), row), item["notes"]], axis=1)
             for row, item in enumerate(items)]
    batch = {"waveforms": waveforms,
             "notes": torch.from_numpy(np.concatenate(notes)).float() if notes else torch.zeros(0, 5),
             "index": torch.tensor([item["index"] for item in items]),
             "recording": [item["recording"] for item in items]}
    lengths = torch.tensor([len(item["waveform"]) for item in items])
    if (lengths != longest).any():
        batch["lengths"] = lengths
    return batch


def tile(length: int, window: int, offset: int) -> list[tuple[int, int]]:
    """Back-to-back ``(start, window)`` spans of a recording of ``length`` samples from ``offset`` on."""
    return [(start, window) for start in range(offset, length - window + 1, window)]


class TranscriptionDataModule(pl.LightningDataModule):
    """The machinery MusicNet and MAESTRO share; a subclass lists its recordings per split."""

    dataset_name = "transcription"
    tasks: tuple[str, ...] = ()

    def __init__(self, root: str, task: str, cache_dir: str | None = None, window_seconds: float = 10.0,
                 batch_size: int = 8, num_workers: int = 0, seed: int = 0, train_minutes: float | None = None,
                 max_recordings: int | None = None, pin_memory: bool = False, progress: bool = True) -> None:
        super().__init__()
        if task not in self.tasks:
            raise ConfigError(f"data.init_args.task={task!r}: {type(self).__name__} serves {', '.join(self.tasks)}")
        if window_seconds <= 0:
            raise ConfigError(f"data.init_args.window_seconds={window_seconds} must be positive")
        if train_minutes is not None and train_minutes <= 0:
            raise ConfigError(f"data.init_args.train_minutes={train_minutes} must be positive")
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root / "cache_16k"
        self.window = round(window_seconds * SAMPLE_RATE)
        self.datasets: dict[str, TranscriptionWindows] = {}
        self.save_hyperparameters()

    # -- what a subclass provides ----------------------------------------------------------------
    def recordings(self) -> dict[str, list[Recording]]:
        """``{"train": [...], "valid": [...], "test": [...]}``, before ``max_recordings``."""
        raise NotImplementedError

    def read_notes(self, recording: Recording, duration: float) -> Notes:
        raise NotImplementedError

    # -- the splits ------------------------------------------------------------------------------
    def _recordings(self) -> dict[str, list[Recording]]:
        out = self.recordings()
        n = self.hparams.max_recordings
        return {split: items[:n] for split, items in out.items()} if n else out

    def prepare_data(self) -> None:
        """Build (or update) the 16 kHz cache of every split's recordings."""
        everything = [r for items in self._recordings().values() for r in items]
        build_cache([(r.id, r.audio) for r in everything], self.cache_dir, SAMPLE_RATE, self.hparams.progress)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",),
                  "predict": ("test",)}.get(stage or "", ("train", "valid", "test"))
        recordings = self._recordings()
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self._split(split, recordings[split])

    def _split(self, split: str, recordings: list[Recording]) -> TranscriptionWindows:
        if not recordings:
            raise DataError(f"{self.dataset_name} under {self.root}: the {split} split holds no recordings")
        index = open_cache([(r.id, r.audio) for r in recordings], self.cache_dir, SAMPLE_RATE)
        notes = [self.read_notes(r, e.num_samples / SAMPLE_RATE) for r, e in zip(recordings, index.entries)]
        hp = self.hparams
        windows = []
        for position, entry in enumerate(index.entries):
            if split == "test":
                windows.append(Window(position, 0, entry.num_samples))
                continue
            offset = 0
            if split == "train":  # a seeded random offset within the first window
                rng = np.random.default_rng([hp.seed, zlib.crc32(entry.id.encode())])
                offset = int(rng.integers(0, max(1, min(self.window, entry.num_samples - self.window + 1))))
            windows += [Window(position, start, length) for start, length in tile(entry.num_samples, self.window,
                                                                                  offset)]
        if split == "train" and hp.train_minutes is not None:
            keep = round(hp.train_minutes * 60 * SAMPLE_RATE / self.window)
            order = np.random.default_rng([hp.seed, zlib.crc32(b"train_minutes")]).permutation(len(windows))
            windows = [windows[i] for i in sorted(order[:max(1, keep)])]
        if not windows:
            raise DataError(f"{self.dataset_name} {split}: every recording is shorter than one window of "
                            f"{hp.window_seconds} s; lower data.init_args.window_seconds")
        dataset = TranscriptionWindows(index, notes, windows)
        log.info("%s %s: %d recordings, %d windows, %.1f min", self.dataset_name, split, len(recordings),
                 len(windows), dataset.seconds() / 60)
        return dataset

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "valid": "validate", "test": "test"}[split])
        return DataLoader(self.datasets[split], batch_size=batch_size, shuffle=shuffle, collate_fn=collate_windows,
                          num_workers=self.hparams.num_workers,
                          pin_memory=self.hparams.pin_memory and torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", False, self.hparams.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, 1)  # whole recordings, one at a time

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


class MusicNetTranscriptionDataModule(TranscriptionDataModule):
    """MusicNet's recordings and label CSVs (``{train,test}_labels/<id>.csv``) for transcription.

    Args beyond :class:`TranscriptionDataModule`'s: ``val_recordings``: how many training
    recordings to hold out for validation (default: 8% of them, at least one).
    """

    dataset_name = "MusicNet"
    tasks = ("musicnet_transcription",)

    def __init__(self, root: str, task: str = "musicnet_transcription", cache_dir: str | None = None,
                 window_seconds: float = 10.0, batch_size: int = 8, num_workers: int = 0, seed: int = 0,
                 train_minutes: float | None = None, max_recordings: int | None = None, pin_memory: bool = False,
                 progress: bool = True, val_recordings: int | None = None) -> None:
        super().__init__(root, task, cache_dir, window_seconds, batch_size, num_workers, seed, train_minutes,
                         max_recordings, pin_memory, progress)

    def recordings(self) -> dict[str, list[Recording]]:
        base = find_musicnet_dir(self.root)
        train, test = ([Recording(i, wav, base / f"{split}_labels" / f"{wav.stem}.csv")
                        for i, wav in list_recordings(base, split)] for split in ("train", "test"))
        for recording in train + test:
            if not recording.notes.is_file():
                raise LabelFileError(f"{recording.audio} has no labels: expected {recording.notes} (re-extract "
                                     "MusicNet; transcription needs every recording's label CSV)")
        held = self.hparams.val_recordings
        held = max(1, round(0.08 * len(train))) if held is None else held
        if not 0 < held < len(train):
            raise ConfigError(f"data.init_args.val_recordings={held}: choose 1..{len(train) - 1} of the "
                              f"{len(train)} training recordings")
        chosen = set(np.random.default_rng([self.hparams.seed, zlib.crc32(b"musicnet-valid")])
                     .choice(len(train), size=held, replace=False).tolist())
        return {"train": [r for i, r in enumerate(train) if i not in chosen],
                "valid": [r for i, r in enumerate(train) if i in chosen], "test": test}

    def read_notes(self, recording: Recording, duration: float) -> Notes:
        return read_musicnet_labels(recording.notes, duration)


class MaestroTranscriptionDataModule(TranscriptionDataModule):
    """MAESTRO v3.0.0 performances and their MIDI (see :mod:`lightning_w2v.data.maestro`) for piano
    transcription."""

    dataset_name = "MAESTRO"
    tasks = ("maestro_transcription",)

    def __init__(self, root: str, task: str = "maestro_transcription", cache_dir: str | None = None,
                 window_seconds: float = 10.0, batch_size: int = 8, num_workers: int = 0, seed: int = 0,
                 train_minutes: float | None = None, max_recordings: int | None = None, pin_memory: bool = False,
                 progress: bool = True) -> None:
        super().__init__(root, task, cache_dir, window_seconds, batch_size, num_workers, seed, train_minutes,
                         max_recordings, pin_memory, progress)

    def recordings(self) -> dict[str, list[Recording]]:
        split_of = {"train": "train", "validation": "valid", "test": "test"}
        out: dict[str, list[Recording]] = {"train": [], "valid": [], "test": []}
        for performance in read_maestro_index(self.root):
            rec_id = "maestro_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in
                                          performance.audio.relative_to(performance.audio.parents[1])
                                          .with_suffix("").as_posix())
            out[split_of[performance.split]].append(Recording(rec_id, performance.audio, performance.midi))
        return out

    def read_notes(self, recording: Recording, duration: float) -> Notes:
        notes = read_midi_notes(recording.notes)
        late = notes.onset >= duration
        if late.any():
            raise LabelFileError(f"{recording.notes}: a note at {notes.onset[late][0]:.2f} s lies beyond the end of "
                                 f"its recording {recording.audio} ({duration:.2f} s)")
        return Notes(notes.onset, np.minimum(notes.offset, duration), notes.pitch, notes.instrument)


def probe_windows(root: str | Path, split: str, count: int, window_seconds: float = 5.0,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded set of ``count`` labelled MusicNet windows of one split (``train`` or ``valid``, as the
    transcription data module makes them): ``(windows (N, S), notes (M, 5))``, for linear frame probes.
    Reads the 16 kHz cache, which must be built (``lightning-w2v data prepare musicnet``)."""
    module = MusicNetTranscriptionDataModule(str(root), window_seconds=window_seconds, seed=seed, progress=False)
    module.setup("fit")
    dataset = module.datasets[split]
    chosen = sorted(np.random.default_rng([seed, zlib.crc32(f"probe-{split}".encode())])
                    .permutation(len(dataset))[:count].tolist())
    batch = collate_windows([dataset[i] for i in chosen])
    return batch["waveforms"], batch["notes"]
