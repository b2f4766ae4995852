"""Folders the project writes into are marked as ours; anything else is the user's and is left alone.

A folder the user names (``--data.init_args.root`` of a demo module, a cache folder, a run's
``default_root_dir``, an ``--out`` folder) is *claimed* before anything is written there:

- a folder that does not exist yet, or is empty, is created and gets the marker file
  ``.lightning-w2v.json`` (``{"kind": ..., "version": ...}``);
- a folder with our marker of the same kind is used as it is;
- a non-empty folder without the marker is refused with a :class:`DiskError` that names it
  and says what to do, and nothing in it is touched. Folders written by version 0.1, which
  had no marker, are recognised by their content (``adopt``) and get one.

So nothing of the user's is ever deleted or overwritten: every removal in the package acts
only inside a claimed folder, or on a temporary file of our own naming scheme.
"""
from __future__ import annotations

import fnmatch
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from .. import __version__
from ..errors import DiskError
from .atomic import atomic_write_text

MARKER_NAME = ".lightning-w2v.json"


def _marker(folder: Path) -> dict | None:
    try:
        content = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) and "kind" in content else None


def is_ours(folder: str | os.PathLike, kind: str | None = None) -> bool:
    """Whether ``folder`` carries our marker (of ``kind``, when given)."""
    marker = _marker(Path(folder))
    return marker is not None and (kind is None or marker["kind"] == kind)


def only_names(patterns: Iterable[str]) -> Callable[[Path], bool]:
    """An ``adopt`` test: every entry of the folder matches one of the glob ``patterns``."""
    patterns = tuple(patterns)

    def test(folder: Path) -> bool:
        return all(any(fnmatch.fnmatch(entry.name, p) for p in patterns) for entry in folder.iterdir())

    return test


def mark(folder: Path, kind: str) -> None:
    """Write (or rewrite) our marker: only for a folder this process made or has claimed."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = json.dumps({"kind": kind, "version": __version__, "created": stamp}, indent=1) + "\n"
    try:
        atomic_write_text(folder / MARKER_NAME, text)
    except OSError as error:
        raise DiskError(f"cannot write to {folder}: {error.strerror or error}; choose a writable folder") from None


def claim_folder(folder: str | os.PathLike, kind: str, *, adopt: Callable[[Path], bool] | None = None,
                 hint: str = "choose a new or empty folder", check_only: bool = False) -> Path:
    """Make ``folder`` ours (``kind``: e.g. ``run``, ``cache``, ``demo-nsynth``); returns it.

    Raises :class:`DiskError` naming the folder when it is not empty and not ours, or holds
    our data of another kind; ``hint`` says what to do (e.g. which option picks another
    folder). Nothing in a refused folder is read beyond its listing, or changed.
    ``check_only``: raise the same errors, but create and write nothing.
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DiskError(f"{folder} is a file, not a folder; {hint}")
    marker = _marker(folder) if folder.is_dir() else None
    if marker is not None:
        if marker["kind"] != kind:
            raise DiskError(f"{folder} holds lightning-w2v {marker['kind']} files, not {kind}; {hint}")
        return folder
    try:
        if not check_only:
            folder.mkdir(parents=True, exist_ok=True)
        entries = list(folder.iterdir()) if folder.is_dir() else []
    except OSError as error:
        raise DiskError(f"cannot create or read {folder}: {error.strerror or error}; {hint}") from None
    if entries and not (adopt is not None and adopt(folder)):
        shown = ", ".join(sorted(e.name for e in entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise DiskError(f"{folder} is not empty ({shown}) and was not written by lightning-w2v; "
                        f"nothing in it was changed; {hint}")
    if not check_only:
        mark(folder, kind)
    return folder
