"""Frozen-encoder features on disk: extracted once, reused by every later FE run over the same audio.

Under FE the encoder never changes, so what the head reads for a given item (its pooled features:
one layer, or every layer for ``weighted``) is a constant. The store keeps those constants as one
``(N, S, E)`` float32 ``.npy`` file per data set, memory-mapped when read, so it is bounded by disk,
not RAM. Where a file lives says everything its numbers depend on:

- ``<root>/<encoder key>/``: a hash of the encoder (its class, architecture and every weight and
  buffer, so a retrained or different checkpoint is a different key whatever its file is called),
  the layers the head reads, the pooling and the numeric precision; ``store.json`` there names them;
- ``<data identity>.npy``: the data set's own ``feature_identity()`` (its items, their audio
  files' size and modification time, the slicing), so a changed file or slicing is a new name.

Other seeds, other heads and other tasks over the same items (NSynth pitch and instrument read the
same notes) find the same file. There is no separate extraction pass: the first epoch fills the
store as its batches pass, each rank writing its own share into a private part file; once every
item is filled (checked across ranks), a barrier, rank 0 merges the parts into a temporary file and
renames it into place, a second barrier, and every rank reads the finished file. A file that is not
there whole is never read, and one that does not hold the expected rows is rebuilt, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..files import atomic_write_text

log = logging.getLogger(__name__)
STORE_VERSION = 1
MERGE_ROWS = 4096  # rows copied at a time when ranks' parts are merged (bounded memory)


class Collective(Protocol):
    """What the store needs of a Lightning strategy (single-process strategies do all of it trivially)."""

    is_global_zero: bool
    global_rank: int

    def barrier(self, name: str | None = None) -> None: ...
    def broadcast(self, obj: Any, src: int = 0) -> Any: ...
    def all_gather(self, tensor: torch.Tensor, group: Any = None, sync_grads: bool = False) -> torch.Tensor: ...


def encoder_fingerprint(encoder: nn.Module) -> str:
    """A hash of the encoder's class, architecture and every weight and buffer."""
    digest = hashlib.sha256(f"{type(encoder).__module__}.{type(encoder).__qualname__}".encode())
    architecture = getattr(encoder, "architecture", None)
    if callable(architecture):
        digest.update(json.dumps(architecture(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        values = tensor.detach().cpu().contiguous()
        if values.dtype == torch.bfloat16:
            values = values.float()
        digest.update(f"{name}:{values.dtype}:{tuple(values.shape)}".encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()


def short_hash(parts: Any) -> str:
    """A stable 24-hex-digit name for JSON-able ``parts``."""
    text = json.dumps({"version": STORE_VERSION, "parts": parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def read_whole(path: Path, count: int) -> np.ndarray | None:
    """The features at ``path``, memory-mapped, if it is a whole ``(count, S, E)`` file; else None."""
    if not path.is_file():
        return None
    try:
        features = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:  # a bad header, or a file shorter than its header says
        log.warning("feature store %s is unreadable (%s): extracting the features again", path, exc)
        return None
    if features.ndim != 3 or features.shape[0] != count or features.dtype != np.float32:
        log.warning("feature store %s holds %s %s, expected %d rows of float32: extracting the features again",
                    path, features.shape, features.dtype, count)
        return None
    return features


class StoredFeatures:
    """One data set's features in one store: read from the finished file, or filled as batches pass.

    ``missing``/``put``/``get`` serve the steps; :meth:`finish` (collective: every rank calls it at the
    same point, e.g. an epoch's end) publishes the file once every item has its features.
    """

    def __init__(self, path: Path, count: int, strategy: Collective) -> None:
        self.path, self.count = path, count
        mine = read_whole(path, count)
        whole = strategy.broadcast(mine is not None)  # rank 0 decides for all
        self.rows = mine if whole else None
        if whole and mine is None:
            raise RuntimeError(f"{path}: rank {strategy.global_rank} cannot read the feature store rank 0 read")
        self.filled = None if self.rows is not None else np.zeros(count, dtype=bool)
        token = strategy.broadcast(uuid.uuid4().hex[:12])  # this run's part files: concurrent runs never collide
        self._part_prefix = f".{path.stem}.{token}"
        self._rank = strategy.global_rank
        self._writable: np.ndarray | None = None
        if self.rows is not None:
            log.info("features read from %s", path)

    @property
    def complete(self) -> bool:
        return self.rows is not None

    def _part(self, rank: int) -> tuple[Path, Path]:
        return (self.path.parent / f"{self._part_prefix}.rank{rank}.npy",
                self.path.parent / f"{self._part_prefix}.rank{rank}.filled.npy")

    def missing(self, index: np.ndarray) -> np.ndarray:
        """(B,) True where item ``index[i]`` has no features here yet."""
        if self.complete:
            return np.zeros(len(index), dtype=bool)
        return ~self.filled[index]

    def put(self, index: np.ndarray, features: np.ndarray) -> None:
        """Keep (B, S, E) ``features`` of items ``index`` in this rank's part file."""
        if self._writable is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writable = np.lib.format.open_memmap(self._part(self._rank)[0], mode="w+", dtype=np.float32,
                                                       shape=(self.count, *features.shape[1:]))
        self._writable[index] = features
        self.filled[index] = True

    def get(self, index: np.ndarray) -> np.ndarray:
        """(B, S, E) features of items ``index`` (each must be there: see :meth:`missing`)."""
        source = self.rows if self.complete else self._writable
        return np.asarray(source[index], dtype=np.float32)

    def finish(self, strategy: Collective, device: torch.device) -> None:
        """Publish the store once every item has features on some rank (collective; else nothing happens)."""
        if self.complete:
            return
        local = torch.from_numpy(self.filled.astype(np.uint8)).to(device)
        masks = strategy.all_gather(local).reshape(-1, self.count)  # (ranks, N)
        if not bool(masks.amax(dim=0).all()):
            return  # a partial epoch (limit_*_batches, a skipped file): this run keeps computing the rest
        rows_path, filled_path = self._part(self._rank)
        if self._writable is not None:
            self._writable.flush()
            self._writable = None
        np.save(filled_path, self.filled)
        strategy.barrier("feature-store-parts")
        if strategy.is_global_zero:
            self._merge(world=masks.shape[0])
        strategy.barrier("feature-store-merged")
        self.rows = read_whole(self.path, self.count)
        if self.rows is None:
            raise RuntimeError(f"{self.path}: the merged feature store cannot be read; check the disk")
        self.filled = None
        log.info("features of %d items stored in %s", self.count, self.path)

    def discard(self) -> None:
        """Remove this rank's part files of a store the run leaves unfinished (a partial epoch, a skipped
        item): nothing half-written stays behind; the next run starts the store afresh."""
        if self.complete:
            return
        self._writable = None
        for path in self._part(self._rank):
            path.unlink(missing_ok=True)

    def _merge(self, world: int) -> None:
        parts = [self._part(rank) for rank in range(world)]
        present = [(rows, filled) for rows, filled in parts if rows.is_file()]
        if world == 1 and present:  # one rank filled everything: its part is already the whole file
            os.replace(present[0][0], self.path)
        else:
            shape = np.load(present[0][0], mmap_mode="r").shape
            temporary = self.path.with_name(f"{self._part_prefix}.merged.npy")
            merged = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32, shape=shape)
            for rows_path, filled_path in present:
                rows, filled = np.load(rows_path, mmap_mode="r"), np.load(filled_path)
                for start in range(0, self.count, MERGE_ROWS):
                    stop = min(start + MERGE_ROWS, self.count)
                    chosen = np.flatnonzero(filled[start:stop]) + start
                    merged[chosen] = rows[chosen]
            merged.flush()
            del merged
            os.replace(temporary, self.path)
        for rows_path, filled_path in parts:
            rows_path.unlink(missing_ok=True)
            filled_path.unlink(missing_ok=True)


def describe_store(folder: Path, description: dict[str, Any]) -> None:
    """``store.json``: what the features of this folder were extracted with (for people; keys decide)."""
    path = folder / "store.json"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(description, indent=2, default=str) + "\n")
