"""Writable and free-space checks before a run, and clear errors when a disk fills up mid-run."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import DiskError


def _mib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.1f} GiB" if num_bytes >= 2**30 else f"{num_bytes / 2**20:.1f} MiB"


def existing_ancestor(path: str | os.PathLike) -> Path:
    """``path`` itself or its nearest parent that exists (where a new folder would be made)."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_point(path: str | os.PathLike) -> Path:
    path = existing_ancestor(path)
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def check_writable(folder: str | os.PathLike, needed_bytes: int = 0, what: str = "output",
                   hint: str = "choose another folder") -> None:
    """Raise :class:`DiskError` unless ``folder`` (or the parent it would be made in) takes a
    file, and its file system has ``needed_bytes`` free."""
    folder = Path(folder).expanduser()
    base = existing_ancestor(folder)
    if not base.is_dir():
        raise DiskError(f"{what} folder {folder}: {base} is a file, not a folder; {hint}")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as error:
        raise DiskError(f"{what} folder {folder} is not writable ({error.strerror or error}); {hint}") from None
    free = shutil.disk_usage(base).free
    if needed_bytes and free < needed_bytes:
        raise DiskError(f"{what} folder {folder}: the file system at {mount_point(base)} has {_mib(free)} free, "
                        f"at least {_mib(needed_bytes)} is needed for one checkpoint; free space or {hint}")


def user_cache_path(kind: str, folder: str | os.PathLike) -> Path:
    """``$XDG_CACHE_HOME/lightning_w2v/<kind>/<hash of folder>``: where what belongs beside a read-only data
    folder goes instead."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    return cache_home / "lightning_w2v" / kind / digest


def first_writable_folder(candidates: list[Path]) -> Path | None:
    """The first of ``candidates`` that takes a file (:func:`check_writable`), made if missing; None if none."""
    for folder in candidates:
        try:
            check_writable(folder)
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except (DiskError, OSError):
            continue
    return None


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` or any exception it was raised from is ENOSPC / EDQUOT.

    torch's zip writer reports a failed write as ``RuntimeError: ... unexpected pos`` with the
    ``OSError(ENOSPC)`` only as its context, so the whole chain is searched.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_error(path: str | os.PathLike, what: str = "file", kept: str | None = None) -> DiskError:
    """The one-line error for a write of ``path`` that failed because its file system is full."""
    base = existing_ancestor(Path(path).parent)
    free = shutil.disk_usage(base).free
    tail = f"; {kept} is intact" if kept else ""
    return DiskError(f"cannot write {what} {path}: the file system at {mount_point(base)} is full "
                     f"({_mib(free)} free){tail}; free space, or write elsewhere "
                     "(e.g. --trainer.default_root_dir)")
