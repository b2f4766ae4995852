"""Atomic file writes: a temporary file beside the target, fsync, then ``os.replace``."""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import IO, Callable, Iterator

PARTIAL_SUFFIX = ".partial"


def partial_name(path: Path) -> Path:
    """``.<name>.<pid>.<random>.partial`` beside ``path``: unique, hidden, recognisably ours."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


def stale_partials(path: Path) -> Iterator[Path]:
    """Temporary files of earlier, killed writes to ``path`` (our naming scheme only)."""
    return path.parent.glob(f".{path.name}.*{PARTIAL_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; some file systems cannot open or fsync a folder (ignored)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a binary file whose content replaces ``path`` only when the block ends cleanly.

    On any error (a full disk, a kill signal turned into an exception) the temporary file
    is removed and ``path`` keeps its old content. A process killed outright leaves at most
    a hidden ``*.partial`` file, which the next write to the same path removes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_partials(path):
        stale.unlink(missing_ok=True)
    tmp = partial_name(path)
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """``write(handle)`` into an atomic file: e.g. ``lambda f: np.save(f, array)``."""
    with atomic_write(path) as handle:
        write(handle)
