"""Pre-training on any folder tree of audio, through the same cache, segments and sampler as MusicNet.

Files: every file under ``root`` (recursively, links to folders not followed, hidden files
and folders and the cache folder skipped) whose extension is in ``extensions`` (default
wav, flac, ogg, mp3: what libsndfile decodes; case-insensitive), that matches an
``include`` pattern (default: all) and no ``exclude`` pattern. Any sample rate and channel
count: the 16 kHz mono int16 cache of :mod:`lightning_w2v.data.cache` converts them once
(down-mix by averaging, torchaudio's windowed-sinc resampling).

Patterns are shell globs (``fnmatch``, case-sensitive) on paths relative to ``root`` with
``/`` separators:

- a pattern without ``/`` matches any single path component: ``*.flac`` every FLAC file,
  ``drafts`` everything inside any folder named ``drafts``;
- a pattern with ``/`` matches the path from the root or any leading part of it:
  ``live/2019`` (the folder and everything under it), ``live/*.wav``; ``*`` also crosses
  ``/``, and a leading ``**/`` may also match nothing.

Validation: a held-out fraction of the *files* (``val_fraction``), chosen by a hash of
each relative path, so a file keeps its split when the corpus grows or is re-ordered
(at least one file is held out when ``val_fraction > 0`` and there are two or more). It
is cut into fixed ``val_crop_seconds`` crops, as MusicNet's test recordings are.

``prepare_data`` writes ``<cache_dir>/manifest.tsv`` (atomically): a header line, then one
line per file: ``path`` (relative to ``root``), ``seconds`` (length of the cached 16 kHz
audio) and ``split`` (``train`` / ``val``), for bucketing and inspection.

Everything else (crop lengths, seconds-sized batches, DDP sharding, mid-epoch resuming, the
batch format) is :class:`~lightning_w2v.data.cached.CachedAudioDataModule`'s, shared with
MusicNet. As there, a multi-GPU Trainer needs ``use_distributed_sampler=False``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Sequence

from ..errors import ConfigError, DataNotFoundError
from ..files import atomic_write_bytes
from ..vocabulary import SAMPLE_RATE
from .cache import build_cache
from .cached import CachedAudioDataModule, CropSettings

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = ("wav", "flac", "ogg", "mp3")
MANIFEST_NAME = "manifest.tsv"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def matches(rel_path: str, pattern: str) -> bool:
    """Does ``rel_path`` (relative, ``/``-separated) match ``pattern`` (see the module docstring)?"""
    parts = rel_path.split("/")
    pattern = pattern.strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    pattern = pattern.strip("/")
    if not pattern:
        return False
    if "/" not in pattern:
        return any(fnmatchcase(part, pattern) for part in parts)
    candidates = [pattern] + ([pattern[3:]] if pattern.startswith("**/") else [])
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatchcase(prefix, p) for prefix in prefixes for p in candidates)


def scan_audio_files(
    root: str | os.PathLike,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    skip_dirs: Sequence[str | os.PathLike] = (),
) -> list[str]:
    """Sorted relative paths (``/``-separated) of the audio files under ``root``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"data.init_args.root={root}: the audio folder does not exist or is not a directory")
    exts = {"." + e.lower().lstrip(".") for e in extensions}
    include, exclude = _as_list(include), _as_list(exclude)
    skip = {Path(d).expanduser().resolve() for d in skip_dirs}
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):  # links to folders are not followed
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip)
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in exts:
                continue
            rel = (here / name).relative_to(root).as_posix()
            if "\t" in rel or "\n" in rel or "\r" in rel:
                log.warning("skipping %s: tabs and line breaks in paths do not fit manifest.tsv", rel)
                continue
            if include and not any(matches(rel, p) for p in include):
                continue
            if any(matches(rel, p) for p in exclude):
                continue
            found.append(rel)
    return sorted(found)


def recording_id(rel_path: str) -> str:
    """A unique, file-name-safe cache id for a relative path (readable stem + short hash)."""
    stem = str(PurePosixPath(rel_path).with_suffix(""))
    readable = _UNSAFE.sub("_", stem).strip("._")[-80:] or "audio"
    digest = hashlib.sha1(rel_path.encode("utf-8")).hexdigest()[:10]
    return f"af_{readable}-{digest}"


def _unit_hash(rel_path: str) -> float:
    """A number in [0, 1) fixed by the path: decides the split."""
    digest = hashlib.sha1(b"split:" + rel_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_files(paths: Sequence[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """``(train, val)``: each path goes to val when its hash falls below ``val_fraction``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.init_args.val_fraction={val_fraction} must lie in [0, 1)")
    hashes = {p: _unit_hash(p) for p in paths}
    val = {p for p in paths if hashes[p] < val_fraction}
    if val_fraction > 0 and not val and len(paths) >= 2:
        val = {min(paths, key=hashes.__getitem__)}
    if len(val) == len(paths) and paths:  # keep at least one file to train on
        val.discard(max(paths, key=hashes.__getitem__))
    return [p for p in paths if p not in val], [p for p in paths if p in val]


class AudioFolderDataModule(CachedAudioDataModule):
    """Pre-training data from a directory tree of audio files (see the module docstring).

    Args:
        root: the folder to search (recursively).
        include, exclude: glob patterns (a string or a list) on paths relative to ``root``.
        extensions: file extensions to consider (without dots).
        val_fraction: share of the files held out for validation, in [0, 1).
        cache_dir: where the 16 kHz cache and the manifest live; default ``<root>/cache_16k``
            (skipped by the search).
        max_files: use only the first N files (sorted by path) before splitting (quick runs).
        The other arguments are :class:`~lightning_w2v.data.cached.CropSettings`, with the same
        defaults (fairseq BASE).
    """

    dataset_name = "audio folder"

    def __init__(
        self,
        root: str,
        include: list[str] | str | None = None,
        exclude: list[str] | str | None = None,
        extensions: list[str] = list(DEFAULT_EXTENSIONS),  # noqa: B006 - LightningCLI reads it
        val_fraction: float = 0.05,
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
        max_files: int | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__(root, cache_dir, CropSettings.take(locals()))
        self.save_hyperparameters()
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"data.init_args.val_fraction={val_fraction} must lie in [0, 1)")
        self._file_split: tuple[list[str], list[str]] | None = None

    @property
    def manifest_path(self) -> Path:
        return self.cache_dir / MANIFEST_NAME

    def files(self, rescan: bool = False) -> tuple[list[str], list[str]]:
        """``(train, val)`` relative paths; the tree is searched once per instance."""
        if self._file_split is None or rescan:
            hp = self.hparams
            paths = scan_audio_files(self.root, hp.include, hp.exclude, hp.extensions, skip_dirs=[self.cache_dir])
            if not paths:
                raise DataNotFoundError(
                    f"no audio files under {self.root} with extensions {list(hp.extensions)}"
                    f" matching include={_as_list(hp.include) or 'all'} and exclude={_as_list(hp.exclude)}"
                )
            if hp.max_files:
                paths = paths[: hp.max_files]
            self._file_split = split_files(paths, hp.val_fraction)
        return self._file_split

    def split_sources(self):
        train, val = self.files()
        return ([(recording_id(p), self.root / p) for p in train],
                [(recording_id(p), self.root / p) for p in val])

    def prepare_data(self) -> None:
        """Build the cache (every unreadable file is named first), then write the manifest."""
        train, val = self.files(rescan=True)
        sources = [(recording_id(p), self.root / p) for p in train + val]
        index = build_cache(sources, self.cache_dir, SAMPLE_RATE, self.hparams.progress)
        splits = ["train"] * len(train) + ["val"] * len(val)
        lines = ["path\tseconds\tsplit"] + [
            f"{p}\t{e.num_samples / SAMPLE_RATE:.6f}\t{s}" for p, e, s in zip(train + val, index.entries, splits)
        ]
        text = ("\n".join(lines) + "\n").encode("utf-8")
        atomic_write_bytes(self.manifest_path, text)
        log.info("%s: %d training and %d validation files; manifest %s", self.root, len(train), len(val),
                 self.manifest_path)


def read_manifest(path: str | os.PathLike) -> list[tuple[str, float, str]]:
    """``[(relative path, seconds, split)]`` from a ``manifest.tsv``."""
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:2] != ["path", "seconds"]:
            raise ValueError(f"{path} is not a manifest (header {header})")
        for line in f:
            if line.strip():
                rel, seconds, *rest = line.rstrip("\n").split("\t")
                rows.append((rel, float(seconds), rest[0] if rest else ""))
    return rows
