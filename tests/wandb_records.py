"""Reading an offline W&B run's record stream once W&B has written all of it.

``wandb.finish()`` returns before W&B's service process has necessarily written the run's
last records to ``run-<id>.wandb``: read at once, the file can hold only its 7-byte header.
So the tests read the file as W&B's own format (a LevelDB-style log of protobuf ``Record``
messages) and wait, with a bound, until the run's ``exit`` record is there: then every
record the run logged before it is on disk too.
"""
from __future__ import annotations

import struct
import time
from pathlib import Path

FILE_HEADER = 7  # b":W&B", a 2-byte magic and a version byte
BLOCK = 32 * 1024  # records never cross a block boundary
RECORD_HEADER = 7  # crc32c (4), length (2), type (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def record_payloads(data: bytes) -> list[bytes]:
    """The complete serialized records of a (possibly still growing) run file."""
    payloads, pending, pos = [], b"", FILE_HEADER
    while pos + RECORD_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD_HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + RECORD_HEADER])
        end = pos + RECORD_HEADER + length
        if kind not in (FULL, FIRST, MIDDLE, LAST) or end > len(data):
            break  # not written yet
        chunk, pos = data[pos + RECORD_HEADER:end], end
        if kind == FULL:
            payloads.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        else:
            payloads.append(pending + chunk)
    return payloads


def record_types(data: bytes) -> list[str]:
    from wandb.proto import wandb_internal_pb2

    types = []
    for payload in record_payloads(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        types.append(record.WhichOneof("record_type"))
    return types


def finished_run_records(folder: str | Path, timeout: float = 120.0) -> bytes:
    """The records of the one offline run under ``folder`` (``wandb/offline-run-*``), once its
    ``exit`` record is written; AssertionError if there is not exactly one run, or it does not
    finish within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(Path(folder).glob("wandb/offline-run-*/run-*.wandb"))
        assert len(files) <= 1, files
        data = files[0].read_bytes() if files else b""
        if files and "exit" in record_types(data):
            return b"".join(record_payloads(data))
        if time.monotonic() > deadline:
            raise AssertionError(f"no finished W&B run under {folder} after {timeout:.0f} s "
                                 f"(records so far: {record_types(data) if files else 'no run file'})")
        time.sleep(0.2)
