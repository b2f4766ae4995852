"""Everything that writes to a user's disk: atomic writes, folders we own, disk space.

- :mod:`.atomic`: a file is written to a temporary name beside its target, fsynced and
  renamed into place, so a reader sees the old file or the whole new one, never a part.
- :mod:`.ownership`: a folder the project writes into (demo data, caches, run and output
  folders) carries a marker; a non-empty folder without one is the user's, and is refused
  with an error naming it, never deleted or overwritten.
- :mod:`.space`: writable and free-space checks before a run starts, and a one-line
  :class:`~lightning_w2v.errors.DiskError` when a write fails for lack of space.
"""
from .atomic import (
    atomic_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_text,
)
from .ownership import MARKER_NAME, claim_folder, is_ours
from .space import check_writable, disk_full_error, first_writable_folder, is_disk_full, user_cache_path

__all__ = [
    "MARKER_NAME",
    "atomic_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_text",
    "check_writable",
    "claim_folder",
    "disk_full_error",
    "first_writable_folder",
    "is_disk_full",
    "is_ours",
    "user_cache_path",
]
