"""Errors met in DataLoader workers reach the main process as themselves, not as worker tracebacks.

A dataset that meets a bad file inside a worker returns a :class:`DeferredError` in place of
its item or batch; :class:`RelayingDataLoader` raises it in the main process with its own
type, message and attributes (e.g. ``AudioFileError.path``), exactly as it would have been
raised without workers.
"""
from __future__ import annotations

from typing import Any, Iterator

from torch.utils.data import DataLoader


class DeferredError:
    """An exception carried out of a worker (its type, message and attributes), raised later."""

    def __init__(self, error: BaseException) -> None:
        self.exc_type, self.args, self.attrs = type(error), error.args, dict(vars(error))

    def reraise(self) -> None:
        # Rebuilt without calling __init__: some of ours take (path, problem, hint), not a message.
        error = self.exc_type.__new__(self.exc_type, *self.args)
        error.args = self.args
        error.__dict__.update(self.attrs)
        raise error


class RelayingDataLoader(DataLoader):
    """A DataLoader that raises a worker's :class:`DeferredError` in the main process.

    Subclasses may look at every other batch in :meth:`on_batch` (e.g. to count notes a
    worker skipped) before it is handed on.
    """

    def __iter__(self) -> Iterator[Any]:
        for batch in super().__iter__():
            if isinstance(batch, DeferredError):
                batch.reraise()
            yield self.on_batch(batch)

    def on_batch(self, batch: Any) -> Any:
        return batch
