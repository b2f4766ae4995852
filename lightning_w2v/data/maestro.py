"""MAESTRO v3.0.0 in its distributed layout: the index CSV and the performances' MIDI files.

Layout (``maestro-v3.0.0.zip`` extracted; REFERENCE.md section 7)::

    root/maestro-v3.0.0/maestro-v3.0.0.csv     canonical_composer, canonical_title, split, year,
                                               midi_filename, audio_filename, duration
    root/maestro-v3.0.0/<year>/<name>.wav      44.1-48 kHz stereo
    root/maestro-v3.0.0/<year>/<name>.midi     the aligned performance

``root`` may also be the ``maestro-v3.0.0`` folder itself. The split column is ``train`` /
``validation`` / ``test`` (962 / 137 / 177 performances).

MIDI is parsed with ``pretty_midi``. The sustain pedal follows the usual convention of piano
transcription (Hawthorne et al. 2018, Onsets and Frames): while the pedal is down
(CC64 >= 64), a released key keeps sounding until the pedal goes up, or until the same key
is struck again; the note's offset is extended accordingly.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError
from .formats import MAESTRO_COLUMNS, MAESTRO_CSV, MAESTRO_SPLITS, SUSTAIN_CONTROL, SUSTAIN_THRESHOLD
from .notes import LabelFileError, Notes

PIANO_PROGRAM = 1  # General MIDI: MAESTRO is all piano


class MaestroNotFoundError(DataNotFoundError):
    """The MAESTRO index CSV is not under the data root; the message says where it looked."""


@dataclass(frozen=True)
class Performance:
    split: str
    audio: Path
    midi: Path
    duration: float  # seconds, as the CSV gives it


def find_maestro_dir(root: str | Path) -> Path:
    """The folder holding ``maestro-v3.0.0.csv``: ``root`` or ``root/maestro-v3.0.0``."""
    root = Path(root).expanduser()
    for candidate in (root, root / "maestro-v3.0.0"):
        if (candidate / MAESTRO_CSV).is_file():
            return candidate
    raise MaestroNotFoundError(
        f"MAESTRO not found under {root}: expected {root}/maestro-v3.0.0/{MAESTRO_CSV} with the "
        "performances beside it (<year>/<name>.wav and .midi), the layout of maestro-v3.0.0.zip from "
        "https://magenta.tensorflow.org/datasets/maestro. Download it with "
        f"`lightning-w2v data download maestro --root {root}`.")


def read_maestro_index(root: str | Path) -> list[Performance]:
    """Every performance of the index CSV, its files checked to exist; :class:`LabelFileError` naming the
    CSV and line for a missing column, an unknown split or a missing file."""
    base = find_maestro_dir(root)
    index = base / MAESTRO_CSV
    try:
        with index.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LabelFileError(f"{index}: not a readable CSV file ({error}); re-extract it") from None
    missing = [c for c in ("split", "midi_filename", "audio_filename", "duration") if c not in columns]
    if missing:
        raise LabelFileError(f"{index}, line 1: no {', '.join(missing)} column (MAESTRO's columns: "
                             f"{', '.join(MAESTRO_COLUMNS)})")
    performances = []
    for number, row in enumerate(rows, start=2):
        if row["split"] not in MAESTRO_SPLITS:
            raise LabelFileError(f"{index}, line {number}: split {row['split']!r} is not one of "
                                 f"{', '.join(MAESTRO_SPLITS)}")
        audio, midi = base / row["audio_filename"], base / row["midi_filename"]
        for path in (audio, midi):
            if not path.is_file():
                raise LabelFileError(f"{index}, line {number}: names {path}, which does not exist; re-extract "
                                     "MAESTRO, or remove the line")
        try:
            duration = float(row["duration"])
        except ValueError:
            raise LabelFileError(f"{index}, line {number}: duration {row['duration']!r} is not a number") from None
        performances.append(Performance(row["split"], audio, midi, duration))
    return performances


def read_midi_notes(path: str | Path) -> Notes:
    """The notes of a MIDI file, offsets extended by the sustain pedal (see the module docstring);
    :class:`LabelFileError` naming the file if it cannot be parsed."""
    import pretty_midi  # the transcription extra; only MIDI needs it

    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as error:  # noqa: BLE001 - mido and pretty_midi raise many kinds for a broken file
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LabelFileError(f"{path}: not a readable MIDI file ({first}); re-extract it") from None
    onsets, offsets, pitches = [], [], []
    for instrument in midi.instruments:
        if instrument.is_drum:
            continue
        notes = sorted(instrument.notes, key=lambda n: (n.start, n.pitch))
        pedal = [(c.time, c.value >= SUSTAIN_THRESHOLD) for c in instrument.control_changes
                 if c.number == SUSTAIN_CONTROL]
        ends = sustained_offsets([n.start for n in notes], [n.end for n in notes], [n.pitch for n in notes],
                                 sorted(pedal))
        onsets += [n.start for n in notes]
        offsets += ends
        pitches += [n.pitch for n in notes]
    return Notes.of(onsets, offsets, pitches, [PIANO_PROGRAM] * len(onsets))


def sustained_offsets(onsets: list[float], offsets: list[float], pitches: list[int],
                      pedal: list[tuple[float, bool]]) -> list[float]:
    """Each note's offset with the sustain pedal applied: a note released while the pedal is down ends
    when the pedal goes up, or at the next onset of the same pitch, whichever comes first.

    ``pedal``: ``(time, down)`` changes in time order. A pedal never released holds to its last change.
    """
    times = np.array([t for t, _ in pedal], dtype=np.float64)
    down = np.array([d for _, d in pedal], dtype=bool)
    next_onset: dict[int, list[float]] = {}
    for onset, pitch in sorted(zip(onsets, pitches)):
        next_onset.setdefault(pitch, []).append(onset)
    out = []
    for onset, offset, pitch in zip(onsets, offsets, pitches):
        end = offset
        i = int(np.searchsorted(times, offset, side="right")) - 1  # the pedal's state when the key is released
        if i >= 0 and down[i]:
            ups = np.flatnonzero(~down[i + 1:])
            end = float(times[i + 1 + ups[0]]) if len(ups) else max(offset, float(times[-1]))
        later = [t for t in next_onset[pitch] if t > onset]
        if later:  # the key struck again ends the note (also one whose own release came later)
            end = min(end, later[0])
        out.append(end)
    return out
