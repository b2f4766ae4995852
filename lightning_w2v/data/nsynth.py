"""NSynth (jsonwav) for fine-tuning: pitch (112 classes) or instrument family (11 classes).

Layout: ``root/nsynth-{train,valid,test}/examples.json`` (one object keyed by note_str)
and ``audio/<note_str>.wav`` (16 kHz, mono, 16-bit, 64,000 frames). See REFERENCE.md 3.

Labels: pitch ``p`` in MIDI 9..120 becomes class ``p - 9``; a pitch outside raises (naming
the note and the json file) unless ``drop_out_of_range``, which drops and counts such notes
(``num_dropped``). The family index (0..10) is the instrument label; outside raises.

Bad data policy:
- In ``setup()``, before any training: a missing split folder, malformed or incomplete
  ``examples.json``, a missing wav, or (with ``validate_audio="headers"``) a wav that is not
  16 kHz mono with 64,000 frames or is truncated, raises :class:`NSynthError` naming every
  bad file and its note key.
- During training (files that break after setup, or ``validate_audio="none"``): fail fast
  with :class:`~lightning_w2v.data.audio.AudioFileError` naming the file, by default;
  ``on_bad_file="skip"`` drops the example from its batch, logs a warning and counts it
  in the dataset's ``num_skipped``. With DataLoader workers, both happen in the main
  process: the worker hands the problem over with the batch, so the error is the same
  ``AudioFileError`` (not a worker traceback) and ``num_skipped`` counts every worker's skips.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..errors import ConfigError, DataError
from ..files import first_writable_folder, user_cache_path
from .audio import AudioFileError, check_header, read_audio
from .formats import (  # noqa: F401
    FAMILIES,
    MAX_PITCH,
    MIN_PITCH,
    NSYNTH_NUM_SAMPLES,
    NSYNTH_SAMPLE_RATE,
    NSYNTH_SPLITS,
    NUM_CLASSES,
    QUALITIES,
    REQUIRED_KEYS,
    SOURCES,
    TASKS,
    class_names,
    pitch_name,
)
from .note_table import NoteTable, in_chunks, load_index, save_index
from .workers import DeferredError, RelayingDataLoader

log = logging.getLogger(__name__)

SPLITS = NSYNTH_SPLITS
FEATURES_FOLDER = ".lightning_w2v_features"  # beside the splits (see NSynthDataModule.feature_store_root)
SAMPLE_RATE, NUM_SAMPLES = NSYNTH_SAMPLE_RATE, NSYNTH_NUM_SAMPLES


class NSynthError(DataError):
    """NSynth data is missing or malformed; the message names the file (and note key)."""


def _get_hint(root: Path) -> str:
    return (
        f"Download it with `lightning-w2v data download nsynth --root {root}`, or make a "
        "small synthetic stand-in with `lightning-w2v demo`."
    )


def load_nsynth_split(root: str | os.PathLike, split: str) -> list[dict[str, Any]]:
    """Read one split's ``examples.json``: a list of its records sorted by note_str.

    Each record is the json object plus ``"path"`` (its wav) and ``"split"``. Raises
    :class:`NSynthError` for a missing folder, malformed JSON or a record lacking a key.
    Wav files are not opened here.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root).expanduser()
    d = root / f"nsynth-{split}"
    js = d / "examples.json"
    if not js.is_file():
        raise NSynthError(
            f"NSynth {split} split not found: expected {js} and {d / 'audio'}/<note_str>.wav. "
            + _get_hint(root)
        )
    try:
        raw = json.loads(js.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NSynthError(f"{js}: malformed JSON ({e}); re-download or re-extract it") from e
    if not isinstance(raw, dict):
        found = type(raw).__name__
        raise NSynthError(f"{js}: expected one JSON object keyed by note_str, found {found}")
    records = []
    for key, rec in raw.items():
        if not isinstance(rec, dict):
            raise NSynthError(f"{js}: note {key!r} is not a JSON object")
        missing = [k for k in REQUIRED_KEYS if k not in rec]
        if missing:
            raise NSynthError(f"{js}: note {key!r} lacks key(s) {missing}")
        for k in ("pitch", "velocity", "instrument_family"):
            if not isinstance(rec[k], int) or isinstance(rec[k], bool):
                raise NSynthError(f"{js}: note {key!r} has non-integer {k}={rec[k]!r}")
        records.append({**rec, "path": str(d / "audio" / f"{rec['note_str']}.wav"), "split": split})
    records.sort(key=lambda r: r["note_str"])
    return records


def note_table(root: Path, split: str) -> tuple[NoteTable, os.stat_result, bool]:
    """One split's notes as columns, the stat of its ``examples.json``, and whether they were parsed afresh
    (else read from the split's saved index, which holds only while ``examples.json`` is unchanged)."""
    split_dir = Path(root).expanduser() / f"nsynth-{split}"
    js = split_dir / "examples.json"
    if js.is_file():
        source = js.stat()
        table = load_index(split_dir, split_dir / "audio", split, source)
        if table is not None:
            return table, source, False
    records = load_nsynth_split(root, split)  # every error about a missing or malformed examples.json
    return NoteTable.from_records(records, split_dir / "audio", split), js.stat(), True


def select_per_class(
    labels: np.ndarray, count: float | int, seed: int, salt: str
) -> np.ndarray:
    """Sorted indices of a class-balanced, seeded selection.

    ``count`` an int: that many per class (all if fewer); a float in (0, 1]: that fraction
    of each class, at least one. Each class draws from its own generator
    ``(seed, crc32(salt), class)``, so adding or removing another class changes nothing.
    """
    if isinstance(count, float) and count > 1 and count.is_integer():
        count = int(count)  # "10" from a config parsed as 10.0
    if isinstance(count, float) and not 0.0 < count <= 1.0:
        raise ConfigError(f"data.init_args.subset / few_shot_k: a fraction must be in (0, 1], got {count}")
    if isinstance(count, int) and count < 1:
        raise ConfigError(f"data.init_args.subset / few_shot_k: a per-class count must be >= 1, got {count}")
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = count if isinstance(count, int) else max(1, round(count * len(idx)))
        rng = np.random.default_rng([seed, zlib.crc32(salt.encode()), int(c)])
        keep.append(rng.permutation(idx)[: min(n, len(idx))])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def read_note(record: dict[str, Any]) -> np.ndarray:
    """One note's audio, float32 (64000,); :class:`AudioFileError` unless 16 kHz x 64000 frames."""
    wave, sr = read_audio(record["path"])  # (n,) float32
    if sr != SAMPLE_RATE or len(wave) != NUM_SAMPLES:
        raise AudioFileError(record["path"], f"expected {SAMPLE_RATE} Hz x {NUM_SAMPLES} frames, "
                             f"found {sr} Hz x {len(wave)}", "replace the file")
    return wave


def probe_notes(root: str | os.PathLike, split: str, per_class: int = 4,
                seed: int = 0) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """A small, class-balanced note set of one split: ``per_class`` notes of every pitch and of
    every instrument family (their union, in note order, chosen by ``seed``).

    Returns the records and their audio, ``(N, 64000)`` float32. Used by linear probes, which
    need the same notes at every step of a run.
    """
    chosen = probe_note_records(root, split, per_class, seed)
    return chosen, torch.from_numpy(np.stack([read_note(r) for r in chosen]))


def probe_note_records(root: str | os.PathLike, split: str, per_class: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """The records :func:`probe_notes` reads, without reading their audio."""
    records = load_nsynth_split(root, split)
    if not records:
        raise NSynthError(f"NSynth {split} split under {root} holds no notes")
    pitch = np.array([r["pitch"] for r in records])
    family = np.array([r["instrument_family"] for r in records])
    keep = np.union1d(select_per_class(pitch, per_class, seed, f"probe-pitch-{split}"),
                      select_per_class(family, per_class, seed, f"probe-family-{split}"))
    return [records[i] for i in keep]


def check_fits_in_memory(num_bytes: int, what: str) -> None:
    """ConfigError unless ``num_bytes`` is at most half of this machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: nothing to compare with
        return
    if num_bytes > total // 2:
        raise ConfigError(f"data.init_args.keep_audio_in_memory: {what} would take {num_bytes / 2**30:.1f} GiB, "
                          f"more than half of this machine's {total / 2**30:.1f} GiB; set it to false, or "
                          "use data.init_args.subset")


class _SkippedNote:
    """A note skipped in a DataLoader worker; counted and reported by the main process."""

    def __init__(self, note: str, message: str) -> None:
        self.note, self.message = note, message


SKIPPED_KEY = "skipped_notes"  # batch key (only when a note was skipped in a worker)


class _NotesLoader(RelayingDataLoader):
    """Raises a worker's bad file in the main process, and counts a worker's skips there."""

    def on_batch(self, batch):
        if isinstance(batch, dict) and SKIPPED_KEY in batch:
            for note, message in batch.pop(SKIPPED_KEY):
                self.dataset.count_skipped(note, message)
        return batch


class NSynthNotes(Dataset):
    """Items ``{"waveform": (64000,), "label", "pitch", "family"}``; ``None`` if skipped.

    In a DataLoader worker a bad file gives a placeholder instead (raised, or counted, by
    the loader in the main process); :func:`collate_notes` passes it on.
    """

    def __init__(self, records: NoteTable, labels: np.ndarray, on_bad_file: str = "raise",
                 keep_in_memory: bool = False) -> None:
        self.records, self.labels = records, labels
        self.on_bad_file = on_bad_file
        self.num_skipped = 0
        # note index -> decoded audio, kept after the first read (keep_audio_in_memory)
        self._audio: dict[int, np.ndarray] | None = {} if keep_in_memory else None

    def count_skipped(self, note: str, message: str) -> None:
        self.num_skipped += 1
        log.warning("skipping note %s: %s (%d skipped so far)", note, message, self.num_skipped)

    def __len__(self) -> int:
        return len(self.records)

    def feature_identity(self) -> str:
        """A digest of everything a note's features depend on: each note's file (path, size, modification
        time as the data module's setup saw them) in order. Labels are left out, so pitch and instrument
        runs over the same notes share it."""
        table = self.records
        digest = hashlib.sha256(f"nsynth notes of {NUM_SAMPLES} samples in {table.audio_dir}".encode())
        for column in (table.note_str, table.size, table.mtime_ns):
            digest.update(np.ascontiguousarray(column).tobytes())
        return digest.hexdigest()

    def _read(self, i: int) -> np.ndarray:
        if self._audio is None:
            return read_note(self.records[i])
        if i not in self._audio:
            self._audio[i] = read_note(self.records[i])
        return self._audio[i]

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        rec = self.records[i]
        try:
            wave = self._read(i)
        except AudioFileError as e:
            in_worker = get_worker_info() is not None
            if self.on_bad_file != "skip":
                if in_worker:
                    return DeferredError(e)
                raise
            if in_worker:
                return _SkippedNote(rec["note_str"], str(e))
            self.count_skipped(rec["note_str"], str(e))
            return None
        return {"waveform": torch.from_numpy(wave), "label": int(self.labels[i]),
                "pitch": rec["pitch"], "family": rec["instrument_family"], "index": i}  # fmt: skip


def collate_notes(items: list[dict[str, Any] | None]) -> dict[str, torch.Tensor]:
    """Stack items into ``{"waveforms": (B, 64000), "labels", "pitch", "family", "index": (B,)}``.

    ``None`` items (skipped notes) are dropped. From a worker, a bad file in ``raise`` mode
    becomes the whole batch, and skipped notes are listed under ``SKIPPED_KEY``, for the
    loader to handle in the main process.
    """
    for it in items:
        if isinstance(it, DeferredError):
            return it  # type: ignore[return-value]
    skipped = [(it.note, it.message) for it in items if isinstance(it, _SkippedNote)]
    items = [it for it in items if isinstance(it, dict)]
    extra = {SKIPPED_KEY: skipped} if skipped else {}
    if not items:
        empty = torch.zeros(0, dtype=torch.long)
        return {"waveforms": torch.zeros(0, NUM_SAMPLES), "labels": empty, "pitch": empty,
                "family": empty, "index": empty, **extra}  # fmt: skip
    return {
        **extra,
        "waveforms": torch.stack([it["waveform"] for it in items]),  # (B, 64000)
        "labels": torch.tensor([it["label"] for it in items], dtype=torch.long),  # (B,)
        "pitch": torch.tensor([it["pitch"] for it in items], dtype=torch.long),
        "family": torch.tensor([it["family"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),  # position in the split
    }


class NSynthDataModule(pl.LightningDataModule):
    """NSynth pitch or instrument-family classification (see the module docstring).

    Args:
        root: folder holding ``nsynth-train``, ``nsynth-valid``, ``nsynth-test``.
        task: ``"pitch"`` (112 classes) or ``"instrument"`` (11 families).
        subset: per split, ``None`` (all), a fraction of each class, or a count per class.
        few_shot_k: keep k training examples per class (after ``subset``).
        drop_out_of_range: drop (and count) notes with pitch outside 9..120 instead of failing.
        validate_audio: ``"headers"`` checks every selected wav in ``setup()``; ``"none"`` skips.
        on_bad_file: ``"raise"`` (default) or ``"skip"`` for files that break during training.
        seed: subset and few-shot selection are deterministic from it.
        keep_audio_in_memory: keep each decoded note in RAM after its first read (256 KB a
            note), so later epochs read no file: for the demo and subsets, where a frozen
            encoder's epochs are otherwise mostly file reading. Each DataLoader worker keeps
            its own copy, so use it with ``num_workers=0``; a split too large for half the
            machine's memory is refused.
    """

    def __init__(
        self,
        root: str,
        task: Literal["pitch", "instrument"] = "pitch",
        batch_size: int = 32,
        num_workers: int = 4,
        subset: int | float | None = None,
        few_shot_k: int | None = None,
        drop_out_of_range: bool = False,
        validate_audio: Literal["headers", "none"] = "headers",
        on_bad_file: Literal["raise", "skip"] = "raise",
        seed: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        keep_audio_in_memory: bool = False,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"data.init_args.task={task!r}: choose 'pitch' or 'instrument'")
        if validate_audio not in ("headers", "none") or on_bad_file not in ("raise", "skip"):
            raise ConfigError("data.init_args.validate_audio must be headers|none and on_bad_file raise|skip")
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.datasets: dict[str, NSynthNotes] = {}
        self.num_dropped: dict[str, int] = {}

    @property
    def feature_store_root(self) -> Path | None:
        """Where a frozen encoder's features of these notes are kept (:mod:`lightning_w2v.tasks.feature_store`):
        ``<root>/.lightning_w2v_features``, or the user's cache where the data folder is read-only. Pitch and
        instrument runs over the same notes share them."""
        return first_writable_folder([self.root / FEATURES_FOLDER, user_cache_path("features", self.root)])

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES[self.hparams.task]

    @property
    def class_names(self) -> list[str]:
        return class_names(self.hparams.task)

    def _labels(self, table: NoteTable, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``table`` this task keeps, and their labels (class indices)."""
        js = self.root / f"nsynth-{split}" / "examples.json"
        rows = np.arange(len(table))
        if self.hparams.task == "instrument":
            family = table.instrument_family
            bad = np.flatnonzero((family < 0) | (family >= len(FAMILIES)))
            if len(bad):
                raise NSynthError(f"{js}: note {table.name(bad[0])!r} has instrument_family={int(family[bad[0]])}, "
                                  f"outside 0..{len(FAMILIES) - 1}")
            return rows, family.astype(np.int64)
        inside = (table.pitch >= MIN_PITCH) & (table.pitch <= MAX_PITCH)
        if not inside.all():
            out = np.flatnonzero(~inside)
            if not self.hparams.drop_out_of_range:
                raise NSynthError(
                    f"{js}: note {table.name(out[0])!r} has pitch {int(table.pitch[out[0]])}, outside "
                    f"MIDI {MIN_PITCH}..{MAX_PITCH} ({len(out)} such notes); set "
                    "drop_out_of_range=True to drop them")  # fmt: skip
            log.warning("%s: dropped %d notes with pitch outside %d..%d",
                        js, len(out), MIN_PITCH, MAX_PITCH)  # fmt: skip
            rows = np.flatnonzero(inside)
        self.num_dropped[split] = len(table) - len(rows)
        return rows, (table.pitch[rows] - MIN_PITCH).astype(np.int64)

    def _validate(self, table: NoteTable, rows: np.ndarray, split: str) -> bool:
        """Check the audio of the notes at ``rows``: those whose file changed since the index last saw it
        (or never checked) get their header read. Returns whether the table learnt anything new."""
        headers = self.hparams.validate_audio == "headers"
        size, mtime = table.stat(rows)
        # a file that changed, or is missing (-1: in a fresh table that is also what was "last seen")
        changed = (size != table.size[rows]) | (mtime != table.mtime_ns[rows]) | (size < 0)
        if headers:
            changed |= ~table.checked[rows]
        to_check = rows[changed]

        def check(i: int) -> str | None:
            path = table.path(int(i))
            try:
                if headers:
                    check_header(path, SAMPLE_RATE, 1, NUM_SAMPLES)
                elif not os.path.isfile(path):
                    raise AudioFileError(path, "file not found")
            except AudioFileError as e:
                return f"note {table.name(int(i))!r}: {e}"
            return None

        errors = [e for part in in_chunks(lambda part: [check(i) for i in part], to_check, chunk=256)
                  for e in part if e]
        if len(errors) == 1:
            raise NSynthError(f"NSynth {split}: {errors[0]}")
        if errors:
            shown = "\n".join(f"  - {e}" for e in errors[:20])
            more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
            raise NSynthError(f"NSynth {split}: {len(errors)} bad audio file(s):\n{shown}{more}")
        table.size[rows], table.mtime_ns[rows] = size, mtime
        if headers:
            table.checked[to_check] = True
        return bool(changed.any())

    def load_split(self, split: str) -> NSynthNotes:
        """Notes, labels, subset / few-shot selection and audio checks of one split (the parsed notes and
        checks kept in the split's index: :mod:`lightning_w2v.data.note_table`)."""
        hp = self.hparams
        table, source, fresh = note_table(self.root, split)
        rows, labels = self._labels(table, split)
        if hp.subset is not None:
            keep = select_per_class(labels, hp.subset, hp.seed, f"subset-{split}")
            rows, labels = rows[keep], labels[keep]
        if hp.few_shot_k is not None and split == "train":
            keep = select_per_class(labels, int(hp.few_shot_k), hp.seed, "few-shot")
            rows, labels = rows[keep], labels[keep]
        if self._validate(table, rows, split) or fresh:
            save_index(table, self.root / f"nsynth-{split}", source)
        log.info("NSynth %s: %d notes, %d classes", split, len(rows), len(np.unique(labels)))
        if hp.keep_audio_in_memory:
            check_fits_in_memory(len(rows) * NUM_SAMPLES * 4, f"NSynth {split} ({len(rows)} notes)")
        return NSynthNotes(table.take(rows), labels, hp.on_bad_file, keep_in_memory=hp.keep_audio_in_memory)

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",),
                  "predict": ("test",)}.get(stage or "", SPLITS)  # fmt: skip
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = self.load_split(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        if split not in self.datasets:
            self.datasets[split] = self.load_split(split)
        return _NotesLoader(
            self.datasets[split],
            batch_size=hp.batch_size,
            shuffle=shuffle,
            collate_fn=collate_notes,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory and torch.cuda.is_available(),
            persistent_workers=hp.persistent_workers and hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
