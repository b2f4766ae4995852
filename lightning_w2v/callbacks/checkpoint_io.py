"""Checkpoints written atomically, with a one-line error when the disk is full.

:class:`AtomicCheckpointIO` writes a checkpoint to a temporary file beside its target,
fsyncs it and renames it into place. Lightning's own writer stages the file in the system
temp folder and *moves* it, which is a copy (not atomic) when that folder is on another
file system, as it usually is on clusters.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import TorchCheckpointIO

from ..files import disk_full_error, is_disk_full
from ..files.atomic import atomic_write


def atomic_torch_save(obj: Any, path: str | os.PathLike, what: str = "checkpoint") -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then ``os.replace`` into place.

    A reader (or a resumed run) sees the old file or the complete new one, never a partial
    one, even if the writer is SIGKILLed. A crash leaves at most a hidden ``.partial`` file,
    which the next save to the same path removes. A full file system raises a one-line
    :class:`~lightning_w2v.errors.DiskError` naming it and its free space; the file that was
    at ``path`` before is untouched.
    """
    path = Path(path)
    try:
        with atomic_write(path) as handle:
            torch.save(obj, handle)
    except Exception as error:
        if is_disk_full(error):
            earlier = sorted((p for p in path.parent.glob("*.ckpt") if p != path), key=lambda p: p.stat().st_mtime)
            kept = path if path.exists() else (earlier[-1] if earlier else None)
            raise disk_full_error(path, what, None if kept is None else f"the last one written, {kept},") from None
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O whose local writes are atomic (see :func:`atomic_torch_save`).

    Use as a Trainer plugin (``trainer.plugins`` in the configs). Remote paths (``s3://``...)
    go through Lightning's writer unchanged.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        local = str(path)
        if local.startswith("file://"):
            local = local[len("file://"):]
        atomic_torch_save(checkpoint, local)
