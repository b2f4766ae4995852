"""Errors a user can fix, and how the commands report them.

Every problem caused by input (a data folder, a config value, a checkpoint, the disk) is
raised as a subclass of :class:`LightningW2VError`, with a message that names the file or
key and says what to do. The ``lightning-w2v`` command and ``cli.py`` print such an error as
``error: <message>`` and exit with code 2, without a traceback; with
``LIGHTNING_W2V_DEBUG=1`` they re-raise it so the full traceback shows. Anything else (a bug)
keeps its traceback. Each class also derives from the builtin exception that code catching
it before this module existed expects (``ValueError``, ``RuntimeError``...).
"""
from __future__ import annotations

import os
import sys
from typing import Callable, TypeVar

DEBUG_ENV = "LIGHTNING_W2V_DEBUG"
USAGE_EXIT_CODE = 2  # as argparse / jsonargparse usage errors

T = TypeVar("T")


class LightningW2VError(Exception):
    """A problem the user can fix; the message says what and how."""


class ConfigError(LightningW2VError, ValueError):
    """A config value (YAML key or terminal override) is missing, unknown or out of range."""


class DataError(LightningW2VError, ValueError):
    """A data set folder or file is missing, malformed, or in the wrong format."""


class DataNotFoundError(LightningW2VError, FileNotFoundError):
    """A data folder or its files are not where the config says; the message says where it looked."""


class CheckpointError(LightningW2VError, ValueError):
    """A checkpoint is missing, unreadable, or does not fit the run it is given to."""


class DiskError(LightningW2VError, RuntimeError):
    """An output folder is not ours, not writable, or its file system is full."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def project_error(error: BaseException | None) -> LightningW2VError | None:
    """Our error in ``error``'s chain (itself, or what it was raised from), or None.

    Libraries wrap what they call: jsonargparse, for one, reports a constructor's
    ConfigError inside a long "Does not validate against any of the Union subtypes".
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, LightningW2VError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def format_error(error: BaseException) -> str:
    return f"error: {error}"


def run_reporting_errors(main: Callable[[], T]) -> T | int:
    """Run ``main``; a :class:`LightningW2VError` becomes one ``error: ...`` on stderr and exit code 2.

    Lightning wraps nothing it re-raises, so an error from inside ``trainer.fit`` (a bad WAV
    met in a DataLoader worker, a full disk at a checkpoint) arrives here as itself.
    """
    try:
        return main()
    except Exception as error:
        ours = project_error(error)
        if ours is None or debug_enabled():
            raise
        print(format_error(ours), file=sys.stderr, flush=True)
        return USAGE_EXIT_CODE
