"""NSynth notes as columns, and the validated index kept beside the data.

A split of NSynth has 289,205 notes. Held as a list of dicts they cost about 1.9 GB of RSS, and
every forked DataLoader worker copies the pages it touches as reference counts change (the
copy-on-read growth of worker memory). Here a split is a handful of NumPy arrays (the note names
as fixed-width bytes), a few tens of MB that no reference count touches.

Parsing ``examples.json`` and checking 289,205 WAV headers takes about a minute, so the parsed
columns, each file's size and modification time, and whether its header was checked, are saved
as ``.lightning_w2v_index.npz`` in the split's folder (or, where that folder is read-only, in
``$XDG_CACHE_HOME/lightning_w2v/nsynth_index/``). The index is used only while ``examples.json``
has the size and modification time it was built from; a note whose file changed is checked
again, and the index is rewritten atomically.
"""
from __future__ import annotations

import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..files import atomic_save, user_cache_path

log = logging.getLogger(__name__)
INDEX_NAME = ".lightning_w2v_index.npz"
INDEX_VERSION = 1
INT_COLUMNS = ("pitch", "velocity", "instrument", "instrument_family", "instrument_source")


@dataclass
class NoteTable:
    """One NSynth split's notes, sorted by name: ``note_str`` (N,) bytes, the integer columns (N,), each
    file's ``size`` and ``mtime_ns`` when last seen (-1: never) and ``checked`` (its header was checked
    at that size and time)."""

    audio_dir: str
    split: str
    note_str: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    instrument: np.ndarray
    instrument_family: np.ndarray
    instrument_source: np.ndarray
    size: np.ndarray
    mtime_ns: np.ndarray
    checked: np.ndarray

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], audio_dir: Path, split: str) -> NoteTable:
        count = len(records)
        names = np.array([r["note_str"].encode() for r in records], dtype=np.bytes_)
        columns = {k: np.array([int(r.get(k, -1)) for r in records], dtype=np.int32) for k in INT_COLUMNS}
        return cls(str(audio_dir), split, names, **columns, size=np.full(count, -1, np.int64),
                   mtime_ns=np.full(count, -1, np.int64), checked=np.zeros(count, bool))

    def __len__(self) -> int:
        return len(self.note_str)

    def name(self, i: int) -> str:
        return self.note_str[i].decode()

    def path(self, i: int) -> str:
        return os.path.join(self.audio_dir, self.name(i) + ".wav")

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Note ``i`` as the record ``load_nsynth_split`` gives (made on demand; nothing is kept)."""
        record: dict[str, Any] = {k: int(getattr(self, k)[i]) for k in INT_COLUMNS}
        return {"note_str": self.name(i), **record, "path": self.path(i), "split": self.split}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def take(self, rows: np.ndarray) -> NoteTable:
        """The notes at ``rows`` (a new table; the arrays are copies)."""
        arrays = {f.name: getattr(self, f.name)[rows] for f in fields(self) if f.name not in ("audio_dir", "split")}
        return NoteTable(self.audio_dir, self.split, **arrays)

    def stat(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The current size and modification time of the files at ``rows`` (-1 where a file is missing)."""
        def chunk(part: np.ndarray) -> np.ndarray:
            out = np.full((len(part), 2), -1, dtype=np.int64)
            for k, i in enumerate(part):
                try:
                    st = os.stat(self.path(int(i)))
                except OSError:
                    continue
                out[k] = st.st_size, st.st_mtime_ns
            return out

        stats = np.concatenate(in_chunks(chunk, rows)) if len(rows) else np.zeros((0, 2), np.int64)
        return stats[:, 0], stats[:, 1]

    # -- the saved index ---------------------------------------------------------------------------
    def save(self, path: Path, source: os.stat_result) -> None:
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("audio_dir", "split")}
        meta = np.array([INDEX_VERSION, source.st_size, source.st_mtime_ns], dtype=np.int64)
        atomic_save(path, lambda handle: np.savez(handle, meta=meta, **arrays))

    @classmethod
    def load(cls, path: Path, audio_dir: Path, split: str, source: os.stat_result) -> NoteTable | None:
        """The index at ``path`` if it was built from ``source`` (``examples.json`` as it is now); else None."""
        try:
            with np.load(path) as saved:
                meta = saved["meta"]
                if list(meta) != [INDEX_VERSION, source.st_size, source.st_mtime_ns]:
                    return None
                arrays = {f.name: saved[f.name] for f in fields(cls) if f.name not in ("audio_dir", "split")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            if path.exists():
                log.warning("%s is unreadable (%s): reading examples.json again", path, exc)
            return None
        return cls(str(audio_dir), split, **arrays)


def in_chunks(function: Callable[[np.ndarray], Any], rows: np.ndarray, chunk: int = 4096) -> list[Any]:
    """``function`` over ``rows`` in chunks, on a few threads (file-system calls release the GIL); one task
    per chunk, not per row: 300,000 thread-pool tasks cost far more than the calls themselves."""
    parts = [rows[start:start + chunk] for start in range(0, len(rows), chunk)]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        return list(pool.map(function, parts))


def index_paths(split_dir: Path) -> list[Path]:
    """Where a split's index may live: beside the data, else in the user's cache (read-only data)."""
    return [split_dir / INDEX_NAME, user_cache_path("nsynth_index", split_dir).with_suffix(".npz")]


def save_index(table: NoteTable, split_dir: Path, source: os.stat_result) -> None:
    for path in index_paths(split_dir):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            table.save(path, source)
            return
        except OSError as exc:
            log.debug("cannot write the NSynth index at %s (%s)", path, exc)
    log.warning("could not save the NSynth %s index anywhere: the next setup reads examples.json again",
                table.split)


def load_index(split_dir: Path, audio_dir: Path, split: str, source: os.stat_result) -> NoteTable | None:
    for path in index_paths(split_dir):
        if path.is_file():
            table = NoteTable.load(path, audio_dir, split, source)
            if table is not None:
                return table
    return None
