"""A small SYNTHETIC stand-in for MAESTRO v3.0.0, in its exact layout (``maestro-v3.0.0.csv``, WAV and MIDI).

Piano-like notes from the demo's synthesiser (:func:`lightning_w2v.data.demo.synth_note`), their
MIDI written with ``pretty_midi``, a sustain pedal (CC64) pressed and released within each piece
so the pedal convention is exercised. Nothing here is real music; the folder's ``README.txt``
says so.
"""
from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from .demo import FAMILY_TIMBRES, _readme, perturb, synth_note
from .formats import MAESTRO_COLUMNS, MAESTRO_CSV

MAESTRO_DEMO_RATE = 44_100  # MAESTRO's WAVs are 44.1-48 kHz stereo
DEMO_SPLITS = (("train", 3), ("validation", 1), ("test", 1))


def write_demo_maestro(root: str | os.PathLike, seed: int = 0, seconds: float = 12.0) -> Path:
    """Write ``root/maestro-v3.0.0/`` (the index CSV, ``2018/<name>.wav`` and ``.midi``); returns ``root``."""
    import pretty_midi  # the transcription extra

    root = Path(root)
    base = root / "maestro-v3.0.0"
    (base / "2018").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    number = 0
    for split, count in DEMO_SPLITS:
        for _ in range(count):
            number += 1
            name = f"2018/DEMO--piece_{number:02d}"
            wave, notes, pedal = _piece(seconds, rng)
            stereo = np.stack([wave, 0.9 * wave], axis=1)  # MAESTRO is stereo
            sf.write(base / f"{name}.wav", stereo, MAESTRO_DEMO_RATE, subtype="PCM_16")
            midi = pretty_midi.PrettyMIDI()
            piano = pretty_midi.Instrument(program=0, name="Piano")
            piano.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for s, e, p, v in notes]
            piano.control_changes = [pretty_midi.ControlChange(64, value, time) for time, value in pedal]
            midi.instruments.append(piano)
            midi.write(str(base / f"{name}.midi"))
            rows.append(["Synthetic", f"Demo piece {number}", split, 2018, f"{name}.midi", f"{name}.wav", seconds])
    with open(base / MAESTRO_CSV, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MAESTRO_COLUMNS)
        writer.writerows(rows)
    _readme(root, "MAESTRO", f"write_demo_maestro(seed={seed})")
    return root


def _piece(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, list, list]:
    """Mono float32 audio, notes ``(start, end, pitch, velocity)`` as played (key releases) and the pedal's
    ``(time, value)`` changes; the audio rings while the pedal holds a released key."""
    timbre = replace(perturb(FAMILY_TIMBRES["keyboard"], rng), max_harmonics=12)
    n = int(seconds * MAESTRO_DEMO_RATE)
    mix = np.zeros(n, dtype=np.float32)
    pedal_down, pedal_up = seconds * 0.3, seconds * 0.5
    notes = []
    t = 0.2
    while t < seconds - 1.0:
        for pitch in rng.choice(np.arange(48, 84), size=int(rng.integers(1, 3)), replace=False):
            length = float(rng.uniform(0.2, 0.8))
            release = t + length
            sounding = pedal_up if pedal_down <= release < pedal_up else release  # the pedal holds the key
            velocity = int(rng.integers(50, 110))
            tail = min(sounding + 0.3, seconds) - t
            wave = synth_note(int(pitch), velocity, timbre, MAESTRO_DEMO_RATE, tail, sounding - t, rng)
            i = int(t * MAESTRO_DEMO_RATE)
            mix[i:i + len(wave)] += wave[:n - i]
            notes.append((round(t, 4), round(release, 4), int(pitch), velocity))
        t += float(rng.uniform(0.4, 0.9))
    mix *= 0.9 / (np.abs(mix).max() + 1e-9)
    return mix, notes, [(pedal_down, 127), (pedal_up, 0)]
