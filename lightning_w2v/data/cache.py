"""A 16 kHz mono cache of a set of recordings, read back by memory-mapping.

Pre-training must not decode and resample 44.1 kHz audio in the training loop (see
REFERENCE.md section 4), so :func:`build_cache` converts every recording once:

    cache_dir/
        <rec_id>.npy   int16, shape (num_samples,), 16 kHz mono
        index.json     {"version", "sample_rate", "dtype", "entries": [CacheEntry...]}

Why int16 and not float16: the sources are 16-bit PCM, so int16 keeps their resolution
with uniform quantisation noise (-96 dBFS) at the same 2 bytes per sample as float16,
whose 11-bit mantissa is coarser for loud samples. Resampling can overshoot full scale
slightly, so values are clipped. Read back as ``int16 / 32768``, the exact inverse of how
soundfile scales 16-bit PCM.

Safety:
- every ``.npy`` and ``index.json`` is written to a uniquely named ``*.partial`` temp file
  and moved into place with ``os.replace`` (atomic), so an interrupted build never leaves
  a half-written entry under a real name; the index only lists finished files.
- a rebuild skips entries whose source size and mtime match and whose ``.npy`` exists
  (idempotent), so an interrupted build resumes where it stopped; stray ``*.partial``
  files are ignored and those older than an hour are deleted.
- two processes building one cache at once (``prepare_data`` on several nodes of a shared
  file system) duplicate work but cannot corrupt it.
- all sources are header-checked (truncation included) before anything is converted, and
  all bad files are reported together in one :class:`CacheBuildError`.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataError
from ..files import atomic_write_bytes, claim_folder
from ..files.atomic import atomic_save
from ..files.ownership import only_names
from ..vocabulary import SAMPLE_RATE
from .audio import AudioFileError, PathLike, check_header, read_audio, resample

log = logging.getLogger(__name__)

CACHE_VERSION = 1
INDEX_NAME = "index.json"
CACHE_FILE_NAMES = ("*.npy", INDEX_NAME, ".*.partial", "manifest.tsv")  # what a 0.1 cache held (no marker)
_STALE_PARTIAL_S = 3600.0
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class CacheBuildError(DataError, RuntimeError):
    """One or more source recordings could not be cached; lists every bad file."""

    def __init__(self, errors: list[AudioFileError]) -> None:
        self.errors = errors
        if len(errors) == 1:
            super().__init__(f"{errors[0]} Recordings already cached are kept and will not be redone.")
            return
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(
            f"{len(errors)} audio file(s) could not be cached:\n{lines}\n"
            "Fix or remove these files (re-download / re-extract them), then run again; "
            "recordings already cached are kept and will not be redone."
        )


class CacheNotBuiltError(DataError, RuntimeError):
    """The cache lacks recordings (or holds stale ones) that a run needs; build it first."""


@dataclass(frozen=True)
class CacheEntry:
    id: str
    source: str  # absolute path of the source audio file
    source_size: int  # bytes; with source_mtime_ns decides whether the entry is stale
    source_mtime_ns: int
    num_samples: int  # at the cache's sample rate
    file: str  # file name inside the cache dir


@dataclass
class CacheIndex:
    """The cached recordings; ``load(id)`` memory-maps one as int16."""

    cache_dir: Path
    sample_rate: int
    entries: list[CacheEntry] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, rec_id: str) -> CacheEntry:
        for e in self.entries:
            if e.id == rec_id:
                return e
        raise KeyError(f"{rec_id!r} is not in the cache at {self.cache_dir}")

    def path(self, entry: CacheEntry | str) -> Path:
        entry = self[entry] if isinstance(entry, str) else entry
        return self.cache_dir / entry.file

    def load(self, entry: CacheEntry | str) -> np.ndarray:
        """Memory-map one recording: int16 array ``(num_samples,)``; divide by 32768."""
        return np.load(self.path(entry), mmap_mode="r")

    @property
    def num_samples(self) -> int:
        return sum(e.num_samples for e in self.entries)

    @property
    def hours(self) -> float:
        return self.num_samples / self.sample_rate / 3600.0

    def summary(self) -> dict[str, float]:
        return {"recordings": len(self.entries), "hours": round(self.hours, 4)}

    @classmethod
    def read(cls, cache_dir: PathLike) -> "CacheIndex":
        """Read ``index.json``; an empty index if there is none (or an unknown version)."""
        cache_dir = Path(cache_dir)
        p = cache_dir / INDEX_NAME
        if not p.is_file():
            return cls(cache_dir, 0, [])
        try:
            raw = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            log.warning("ignoring unreadable cache index %s (%s); rebuilding", p, e)
            return cls(cache_dir, 0, [])
        if raw.get("version") != CACHE_VERSION:
            return cls(cache_dir, 0, [])
        return cls(cache_dir, int(raw["sample_rate"]), [CacheEntry(**e) for e in raw["entries"]])

    def write(self) -> None:
        raw = {
            "version": CACHE_VERSION,
            "sample_rate": self.sample_rate,
            "dtype": "int16",
            "entries": [asdict(e) for e in self.entries],
        }
        text = json.dumps(raw, indent=1).encode()
        atomic_write_bytes(self.cache_dir / INDEX_NAME, text)


def to_int16(wave: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16, rounded and clipped (resampling can overshoot)."""
    return np.clip(np.rint(wave * 32768.0), -32768, 32767).astype(np.int16)


def _source_stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _is_fresh(entry: CacheEntry | None, path: Path, cache_dir: Path) -> bool:
    """Same id, source size and mtime, and the ``.npy`` exists. The source path may differ:
    a data root moved with ``mv`` or ``cp -a`` keeps its cache."""
    if entry is None or not (cache_dir / entry.file).is_file():
        return False
    try:
        return _source_stat(path) == (entry.source_size, entry.source_mtime_ns)
    except OSError:
        return False


def _remove_stale_partials(cache_dir: Path) -> None:
    now = time.time()
    for p in cache_dir.glob(".*.partial"):
        try:
            if now - p.stat().st_mtime > _STALE_PARTIAL_S:
                p.unlink()
        except OSError:
            pass


def _convert(rec_id: str, path: Path, cache_dir: Path, sample_rate: int) -> CacheEntry:
    """Decode, down-mix, resample and write one recording; returns its entry."""
    size, mtime = _source_stat(path)
    wave, sr = read_audio(path)  # (n,) float32
    pcm = to_int16(resample(wave, sr, sample_rate))  # (m,) int16
    name = f"{rec_id}.npy"
    atomic_save(cache_dir / name, lambda f: np.save(f, pcm))
    return CacheEntry(rec_id, str(path), size, mtime, int(pcm.shape[0]), name)


def build_cache(
    sources: Iterable[tuple[str, PathLike]],
    cache_dir: PathLike,
    sample_rate: int = SAMPLE_RATE,
    progress: bool = True,
) -> CacheIndex:
    """Convert ``(rec_id, path)`` sources into a mono int16 cache at ``sample_rate``.

    Idempotent and resumable (see the module docstring). Returns the index of exactly the
    requested sources, in order; ``index.json`` also keeps other, still valid entries so
    that a quick run on a subset does not evict the full set.

    Raises :class:`CacheBuildError` listing every bad source (missing, empty, truncated,
    corrupt). Header problems are found before any conversion starts; decode problems
    after the good files are converted (and kept).
    """
    cache_dir = Path(cache_dir)
    hint = "set data.init_args.cache_dir to a new or empty folder for the 16 kHz cache"
    claim_folder(cache_dir, "cache", adopt=only_names(CACHE_FILE_NAMES), hint=hint, check_only=True)
    sources = [(rec_id, Path(p).resolve()) for rec_id, p in sources]
    ids = [rec_id for rec_id, _ in sources]
    bad_ids = [i for i in ids if not _SAFE_ID.match(i)]
    if bad_ids or len(set(ids)) != len(ids):
        raise DataError(f"recording ids must be unique and file-name safe, got {bad_ids or ids}")

    old = CacheIndex.read(cache_dir)
    entries = {e.id: e for e in old.entries} if old.sample_rate == sample_rate else {}
    index = CacheIndex(cache_dir, sample_rate, [])
    todo = [(i, p) for i, p in sources if not _is_fresh(entries.get(i), p, cache_dir)]
    moved = [(i, p) for i, p in sources if (i, p) not in todo and entries[i].source != str(p)]
    for i, p in moved:
        entries[i] = replace(entries[i], source=str(p))

    errors: list[AudioFileError] = []
    for _, path in todo:  # cheap pass first: report every broken header before hours of work
        try:
            check_header(path)
        except AudioFileError as e:
            errors.append(e)
    if errors:
        raise CacheBuildError(errors)
    claim_folder(cache_dir, "cache", adopt=only_names(CACHE_FILE_NAMES), hint=hint)  # made only now
    _remove_stale_partials(cache_dir)

    it = todo
    if progress and todo:
        what = f"caching {len(todo)} recordings at {sample_rate} Hz"
        if sys.stderr.isatty():
            it = tqdm(todo, desc=what, unit="rec")
        else:  # a log file: one line, not a bar redrawn with carriage returns
            print(what, file=sys.stderr, flush=True)
    for rec_id, path in it:
        try:
            entries[rec_id] = _convert(rec_id, path, cache_dir, sample_rate)
        except AudioFileError as e:
            entries.pop(rec_id, None)
            (cache_dir / f"{rec_id}.npy").unlink(missing_ok=True)  # an older, now stale copy
            errors.append(e)
            continue
        index.entries = list(entries.values())
        index.write()  # after every recording, so an interruption loses at most one

    index.entries = list(entries.values())
    if todo or moved or not (cache_dir / INDEX_NAME).is_file():
        index.write()
    if errors:
        raise CacheBuildError(errors)
    index.entries = [entries[i] for i in ids]
    if todo:
        log.info("cache %s: %s (%d converted)", cache_dir, index.summary(), len(todo))
    return index


def open_cache(
    sources: Iterable[tuple[str, PathLike]], cache_dir: PathLike, sample_rate: int = SAMPLE_RATE
) -> CacheIndex:
    """The index of ``sources`` in an already built cache, without converting anything.

    Raises ``RuntimeError`` naming the recordings that are missing or stale (their source
    changed), saying to run ``prepare_data()`` / :func:`build_cache` first.
    """
    cache_dir = Path(cache_dir)
    old = CacheIndex.read(cache_dir)
    entries = {e.id: e for e in old.entries} if old.sample_rate == sample_rate else {}
    sources = [(i, Path(p).resolve()) for i, p in sources]
    stale = [i for i, p in sources if not _is_fresh(entries.get(i), p, cache_dir)]
    if stale:
        shown = ", ".join(stale[:10]) + (f" and {len(stale) - 10} more" if len(stale) > 10 else "")
        raise CacheNotBuiltError(
            f"the {sample_rate} Hz cache at {cache_dir} is missing or stale for {len(stale)} "
            f"recording(s) ({shown}); build it first with prepare_data() (Lightning calls it "
            "before fit) or lightning_w2v.data.cache.build_cache"
        )
    return CacheIndex(cache_dir, sample_rate, [entries[i] for i, _ in sources])
