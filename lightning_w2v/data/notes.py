"""Note annotations of polyphonic recordings: MusicNet's label CSVs, and notes as arrays.

A recording's notes are a :class:`Notes`: parallel arrays of onset and offset (seconds),
MIDI pitch and instrument (General MIDI program, MusicNet's code; MAESTRO's piano is 1).
Frame targets are not made here: the encoder decides where its frames are, and the task
spec turns notes into frame targets at those times (:mod:`lightning_w2v.downstream`).

MusicNet's ``{train,test}_labels/<id>.csv`` (REFERENCE.md section 3)::

    start_time,end_time,instrument,note,start_beat,end_beat,note_value
    9182,90078,43,53,4.0,1.5,Dotted Quarter

``start_time`` / ``end_time`` are sample indices at 44.1 kHz. Every problem in a file is one
:class:`LabelFileError` naming the file and the line: a missing or empty file, a wrong
header, a field that is not a number, an end before its start, a note beyond the end of its
recording, an instrument code MusicNet does not use.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .formats import MUSICNET_INSTRUMENTS, MUSICNET_LABEL_HEADER, MUSICNET_SAMPLE_RATE

# A note may end this long after its recording (MusicNet's labels round to the beat): more is an error
END_TOLERANCE_S = 0.5


class LabelFileError(DataError):
    """A note annotation file is missing or malformed; the message names the file (and line)."""


@dataclass(frozen=True)
class Notes:
    """A recording's notes, as parallel arrays sorted by onset."""

    onset: np.ndarray  # (N,) float64 seconds
    offset: np.ndarray  # (N,) float64 seconds, > onset
    pitch: np.ndarray  # (N,) int64 MIDI
    instrument: np.ndarray  # (N,) int64 General MIDI program (1 = piano)

    def __len__(self) -> int:
        return len(self.onset)

    @classmethod
    def empty(cls) -> "Notes":
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @classmethod
    def of(cls, onset, offset, pitch, instrument) -> "Notes":
        order = np.lexsort((np.asarray(pitch), np.asarray(onset, dtype=np.float64)))
        return cls(np.asarray(onset, dtype=np.float64)[order], np.asarray(offset, dtype=np.float64)[order],
                   np.asarray(pitch, dtype=np.int64)[order], np.asarray(instrument, dtype=np.int64)[order])

    def window(self, start: float, end: float) -> "Notes":
        """The notes sounding in ``[start, end)`` seconds, clipped to it, times relative to ``start``."""
        keep = (self.onset < end) & (self.offset > start)
        return Notes(np.clip(self.onset[keep], start, end) - start, np.clip(self.offset[keep], start, end) - start,
                     self.pitch[keep], self.instrument[keep])

    def as_array(self) -> np.ndarray:
        """(N, 4) float64: onset, offset, pitch, instrument."""
        return np.stack([self.onset, self.offset, self.pitch, self.instrument], axis=1) if len(self) \
            else np.zeros((0, 4))


def read_musicnet_labels(path: str | Path, duration: float | None = None) -> Notes:
    """One MusicNet label CSV -> :class:`Notes`; :class:`LabelFileError` naming the file and line otherwise.

    ``duration``: the recording's length in seconds; a note starting after it, or ending more than
    :data:`END_TOLERANCE_S` after it, is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: label file not found; every recording needs its "
                             f"<split>_labels/<id>.csv (re-extract MusicNet)")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise LabelFileError(f"{path}: not a readable CSV file ({error}); re-extract it") from None
    if not rows:
        raise LabelFileError(f"{path}: the file is empty; it should start with the header "
                             f"{','.join(MUSICNET_LABEL_HEADER)} (re-extract it)")
    header = [h.strip() for h in rows[0]]
    if tuple(header) != MUSICNET_LABEL_HEADER:
        raise LabelFileError(f"{path}, line 1: header {','.join(header)!r} is not MusicNet's "
                             f"{','.join(MUSICNET_LABEL_HEADER)!r}")
    onsets, offsets, pitches, instruments = [], [], [], []
    for number, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue  # a blank line (a trailing newline)
        if len(row) != len(MUSICNET_LABEL_HEADER):
            raise LabelFileError(f"{path}, line {number}: {len(row)} fields, expected "
                                 f"{len(MUSICNET_LABEL_HEADER)} ({','.join(MUSICNET_LABEL_HEADER)})")
        try:
            start, end, instrument, note = (int(float(value)) for value in row[:4])
        except ValueError:
            raise LabelFileError(f"{path}, line {number}: start_time, end_time, instrument and note must be "
                                 f"numbers, got {','.join(row[:4])!r}") from None
        if end <= start or start < 0:
            raise LabelFileError(f"{path}, line {number}: end_time {end} is not after start_time {start}")
        if instrument not in MUSICNET_INSTRUMENTS:
            raise LabelFileError(f"{path}, line {number}: instrument {instrument} is not one of MusicNet's "
                                 f"codes ({', '.join(map(str, MUSICNET_INSTRUMENTS))})")
        if not 0 <= note <= 127:
            raise LabelFileError(f"{path}, line {number}: note {note} is not a MIDI number (0..127)")
        onset, offset = start / MUSICNET_SAMPLE_RATE, end / MUSICNET_SAMPLE_RATE
        if duration is not None and (onset >= duration or offset > duration + END_TOLERANCE_S):
            raise LabelFileError(f"{path}, line {number}: the note {onset:.2f}-{offset:.2f} s lies beyond the end "
                                 f"of its recording ({duration:.2f} s); is this the label file of that recording?")
        onsets.append(onset)
        offsets.append(min(offset, duration) if duration is not None else offset)
        pitches.append(note)
        instruments.append(instrument)
    return Notes.of(onsets, offsets, pitches, instruments)
