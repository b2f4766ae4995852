"""Small SYNTHETIC stand-ins for NSynth and MusicNet, in their exact on-disk formats.

Nothing here is real music data. Each root gets a ``README.txt`` saying so. The data
exist so that the whole pipeline (cache, data modules, pre-training, fine-tuning,
analyses) runs in minutes on a CPU with no download, and so that tests have realistic
files.

One additive note synthesiser (:func:`synth_note`) serves both sets. An instrument
*family* fixes the timbre: harmonic roll-off, odd/even balance, inharmonicity, noise,
vibrato, formants, and the ADSR envelope. Each instrument perturbs its family's timbre at
random, so a family is learnable from timbre and envelope, and pitch from the harmonic
spacing.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from .formats import (
    FAMILIES,
    MUSICNET_LABEL_HEADER,
    MUSICNET_METADATA_HEADER,
    MUSICNET_SAMPLE_RATE,
    MUSICNET_TEST_IDS,
    NSYNTH_NUM_SAMPLES,
    NSYNTH_SAMPLE_RATE,
    QUALITIES,
    SOURCES,
)

NUM_SAMPLES, SAMPLE_RATE = NSYNTH_NUM_SAMPLES, NSYNTH_SAMPLE_RATE


@dataclass(frozen=True)
class Timbre:
    slope: float  # harmonic k has amplitude k**-slope (higher = darker)
    even: float  # gain of even harmonics (0: clarinet / square-like)
    inharmonicity: float  # B in f_k = k f0 sqrt(1 + B k^2) (strings, mallets)
    noise: float  # breath / bow noise, relative to the harmonic part
    attack: float  # seconds to peak
    decay: float  # time constant (s) from peak towards the sustain level
    sustain: float  # level held until note-off (0 for plucked / struck sounds)
    release: float  # time constant (s) after note-off
    damping: float  # extra decay rate (1/s) per harmonic above the first: plucks darken
    vibrato: float  # depth in semitones at 5.5 Hz
    formant: float = 0.0  # centre (Hz) of a resonance boosting nearby harmonics; 0 = none
    max_harmonics: int = 24


FAMILY_TIMBRES: dict[str, Timbre] = {
    "bass": Timbre(1.8, 0.8, 1e-4, 0.00, 0.005, 0.60, 0.00, 0.10, 3.0, 0.0),
    "brass": Timbre(0.8, 1.0, 0.0, 0.02, 0.060, 0.30, 0.80, 0.15, 0.0, 0.05),
    "flute": Timbre(2.6, 0.5, 0.0, 0.12, 0.080, 0.50, 0.85, 0.10, 0.0, 0.10),
    "guitar": Timbre(1.2, 0.9, 3e-4, 0.00, 0.003, 0.90, 0.00, 0.10, 2.0, 0.0),
    "keyboard": Timbre(1.4, 0.9, 4e-4, 0.00, 0.004, 1.40, 0.00, 0.25, 1.0, 0.0),
    "mallet": Timbre(1.0, 0.3, 8e-3, 0.01, 0.001, 0.25, 0.00, 0.05, 6.0, 0.0),
    "organ": Timbre(1.0, 0.7, 0.0, 0.00, 0.010, 0.10, 1.00, 0.05, 0.0, 0.0),
    "reed": Timbre(0.9, 0.1, 0.0, 0.03, 0.040, 0.30, 0.85, 0.10, 0.0, 0.04),
    "string": Timbre(1.0, 1.0, 0.0, 0.03, 0.150, 0.40, 0.90, 0.30, 0.0, 0.25),
    "synth_lead": Timbre(1.0, 0.0, 0.0, 0.00, 0.010, 0.20, 0.90, 0.05, 0.0, 0.10),
    "vocal": Timbre(1.5, 1.0, 0.0, 0.04, 0.120, 0.40, 0.85, 0.20, 0.0, 0.35, formant=800.0),
}
_BOUNDED = {"even": 1.0, "sustain": 1.0}  # parameters that must stay <= 1


def perturb(t: Timbre, rng: np.random.Generator, amount: float = 0.15) -> Timbre:
    """One instrument of a family: every float parameter scaled by ``exp(N(0, amount))``."""
    new = {}
    for f in fields(t):
        v = getattr(t, f.name)
        if isinstance(v, float) and f.name != "formant":
            v = v * float(np.exp(rng.normal(0.0, amount)))
            v = min(v, _BOUNDED.get(f.name, v))
        elif f.name == "formant" and v:
            v = v * float(np.exp(rng.normal(0.0, amount)))
        new[f.name] = v
    return replace(t, **new)


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


def synth_note(
    pitch: int,
    velocity: int,
    timbre: Timbre,
    sample_rate: int,
    duration: float,
    note_off: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """One note: float32 ``(round(duration * sample_rate),)``, peak ``0.8 (velocity/127)^0.7``."""
    n = int(round(duration * sample_rate))
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)  # (n,)
    f0 = midi_to_hz(pitch)
    k = np.arange(1, timbre.max_harmonics + 1, dtype=np.float32)  # (K,)
    fk = f0 * k * np.sqrt(1.0 + timbre.inharmonicity * k**2)  # (K,)
    keep = fk < 0.45 * sample_rate
    k, fk = k[keep], fk[keep]
    loud = velocity / 127.0
    amp = k ** -(timbre.slope * (1.25 - 0.5 * loud))  # louder notes are brighter
    amp = amp * np.where(k % 2 == 0, timbre.even, 1.0)
    if timbre.formant:
        amp = amp * (1.0 + 4.0 * np.exp(-0.5 * ((fk - timbre.formant) / 250.0) ** 2))
    # vibrato: integral of 2**(depth/12 * sin(2 pi r t)) ~ t + depth ln2/12 (1 - cos)/(2 pi r)
    rate = 5.5
    warp = t + np.float32(timbre.vibrato * math.log(2) / 12 / (2 * math.pi * rate)) * (
        1 - np.cos(np.float32(2 * math.pi * rate) * t)
    )  # (n,) float32 throughout: float32 sin is several times faster than float64
    phases = rng.uniform(0, 2 * np.pi, size=len(k)).astype(np.float32)
    omega = np.float32(2 * math.pi) * warp  # (n,)
    # harmonic k decays by an extra exp(-damping/4 * (k-1) * t): a running product, not exp
    step = np.exp(np.float32(-timbre.damping / 4) * t) if timbre.damping else None  # (n,)
    gain = np.ones_like(t)
    wave = np.zeros_like(t)
    for a_k, f_k, ph in zip(amp.tolist(), fk.tolist(), phases.tolist()):
        part = np.sin(np.float32(f_k) * omega + np.float32(ph))  # (n,) float32: fast sin
        wave += np.float32(a_k) * (part if step is None else part * gain)
        if step is not None:
            gain *= step
    wave /= np.abs(wave).max() + 1e-9
    if timbre.noise:
        white = rng.standard_normal(n).astype(np.float32)
        noise = np.convolve(white, np.ones(3, np.float32) / 3, "same")  # slightly low-passed
        wave = wave + np.float32(timbre.noise) * noise
    # ADSR envelope
    a = max(timbre.attack, 1.0 / sample_rate)
    env = np.where(
        t < a, t / a, timbre.sustain + (1 - timbre.sustain) * np.exp(-(t - a) / timbre.decay)
    )
    env = np.where(t < note_off, env, env[min(int(note_off * sample_rate), n - 1)]
                   * np.exp(-(t - note_off) / timbre.release))  # fmt: skip
    wave = wave * env
    wave *= 0.8 * loud**0.7 / (np.abs(wave).max() + 1e-9)
    return wave.astype(np.float32)


def write_wav16(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, encoded in memory: libsndfile fsyncs on close, slow for many small files."""
    buf = io.BytesIO()
    sf.write(buf, wave, sample_rate, format="WAV", subtype="PCM_16")
    Path(path).write_bytes(buf.getvalue())


def _qualities(t: Timbre) -> list[int]:
    on = {
        "bright": t.slope < 0.9,
        "dark": t.slope > 1.8,
        "fast_decay": t.sustain < 0.1 and t.decay < 0.5,
        "long_release": t.release > 0.3,
        "nonlinear_env": t.vibrato > 0.2,
        "percussive": t.attack < 0.005 and t.sustain < 0.1,
    }
    return [int(on.get(q, False)) for q in QUALITIES]


def _readme(root: Path, what: str, call: str) -> None:
    (root / "README.txt").write_text(
        f"SYNTHETIC DEMO DATA - NOT {what}.\n\n"
        f"Written by lightning_w2v.data.demo.{call}. Additive-synthesis notes whose timbre and\n"
        f"envelope depend on a made-up instrument family. The files follow {what}'s exact\n"
        "on-disk format so the pipeline can be exercised without downloading anything.\n"
        "Results obtained on this data say nothing about real music.\n"
    )


def write_demo_nsynth(
    root: str | os.PathLike,
    seed: int = 0,
    instruments_per_family: tuple[int, int, int] = (2, 1, 1),
    notes_per_instrument: tuple[int, int, int] = (24, 20, 20),
    pitch_range: tuple[int, int] = (36, 84),
    velocities: tuple[int, ...] = (25, 50, 75, 100, 127),
) -> Path:
    """Write ``root/nsynth-{train,valid,test}`` (defaults: 528 / 200 / 200 notes); returns root.

    Sizes are per split ``(train, valid, test)``. All 11 families appear in train,
    synth_lead only there (as in NSynth); splits share no instruments. Pitches are dealt
    from shuffled copies of ``pitch_range`` (inclusive) so each split covers them evenly.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    pitches_all = np.arange(pitch_range[0], pitch_range[1] + 1)
    note_id, inst_id, counters = 0, 0, {}
    sizes = zip(("train", "valid", "test"), instruments_per_family, notes_per_instrument)
    for split, n_inst, n_notes in sizes:
        audio = root / f"nsynth-{split}" / "audio"
        audio.mkdir(parents=True, exist_ok=True)
        families = [f for f in FAMILIES if split == "train" or f != "synth_lead"]
        deck = np.concatenate([rng.permutation(pitches_all) for _ in range(
            -(-len(families) * n_inst * n_notes // len(pitches_all)))])  # fmt: skip
        examples: dict[str, dict] = {}
        for family in families:
            for _ in range(n_inst):
                fam = FAMILIES.index(family)
                src = int(rng.choice(3, p=[0.6, 0.25, 0.15]))
                src = {"synth_lead": 2, "organ": 1}.get(family, src)
                counters[(family, src)] = counters.get((family, src), 0) + 1
                inst_str = f"{family}_{SOURCES[src]}_{counters[(family, src)]:03d}"
                timbre = perturb(FAMILY_TIMBRES[family], rng)
                quals = _qualities(timbre)
                deck, mine = deck[n_notes:], deck[:n_notes]
                used: set[tuple[int, int]] = set()
                for pitch in mine.tolist():
                    free = [v for v in velocities if (pitch, v) not in used]
                    if not free:
                        continue
                    vel = int(rng.choice(free))
                    used.add((pitch, vel))
                    note_str = f"{inst_str}-{pitch:03d}-{vel:03d}"
                    seconds = NUM_SAMPLES / SAMPLE_RATE  # held 3 s, released for 1 s
                    wave = synth_note(pitch, vel, timbre, SAMPLE_RATE, seconds, 3.0, rng)
                    write_wav16(audio / f"{note_str}.wav", wave, SAMPLE_RATE)
                    examples[note_str] = {
                        "note": note_id, "note_str": note_str, "instrument": inst_id,
                        "instrument_str": inst_str, "pitch": pitch, "velocity": vel,
                        "sample_rate": SAMPLE_RATE, "instrument_source": src,
                        "instrument_source_str": SOURCES[src], "instrument_family": fam,
                        "instrument_family_str": family, "qualities": quals,
                        "qualities_str": [q for q, on in zip(QUALITIES, quals) if on],
                    }  # fmt: skip
                    note_id += 1
                inst_id += 1
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(examples, indent=2))
    _readme(root, "NSynth", f"write_demo_nsynth(seed={seed})")
    return root


# MusicNet instrument codes (General MIDI program numbers) -> (family timbre, lowest, highest)
INSTRUMENT_VOICES: dict[int, tuple[str, int, int]] = {  # MusicNet code -> (timbre family, lowest, highest MIDI)
    1: ("keyboard", 36, 84),  # piano
    7: ("keyboard", 41, 84),  # harpsichord
    41: ("string", 55, 88),  # violin
    42: ("string", 48, 76),  # viola
    43: ("string", 36, 64),  # cello
    44: ("bass", 28, 55),  # contrabass
    61: ("brass", 41, 72),  # horn
    69: ("reed", 58, 89),  # oboe
    71: ("reed", 34, 65),  # bassoon
    72: ("reed", 50, 84),  # clarinet
    74: ("flute", 60, 93),  # flute
}
ENSEMBLES: dict[str, list[int]] = {
    "Solo Piano": [1, 1],
    "String Quartet": [41, 41, 42, 43],
    "Wind Quintet": [74, 69, 72, 61, 71],
    "Accompanied Violin": [41, 1, 1],
    "Solo Cello": [43],
    "Piano Trio": [1, 41, 43],
}
LABEL_HEADER = list(MUSICNET_LABEL_HEADER)
METADATA_HEADER = list(MUSICNET_METADATA_HEADER)
_NOTE_VALUES = {0.25: "Sixteenth", 0.5: "Eighth", 1.0: "Quarter", 1.5: "Dotted Quarter",
                2.0: "Half"}  # fmt: skip
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])


def synth_piece(
    instruments: list[int], seconds: float, sample_rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[list]]:
    """A polyphonic piece: one voice per instrument walking a major scale.

    Returns the float32 mono mix ``(n,)`` and MusicNet label rows (times in samples).
    """
    n = int(seconds * sample_rate)
    mix = np.zeros(n, dtype=np.float32)
    beat = 60.0 / rng.uniform(80, 140)  # seconds per beat
    key = int(rng.integers(12))
    rows: list[list] = []
    for code in instruments:
        family, lo, hi = INSTRUMENT_VOICES[code]
        timbre = replace(perturb(FAMILY_TIMBRES[family], rng), max_harmonics=16)  # keeps it fast
        scale = np.array([p for p in range(lo, hi + 1) if (p - key) % 12 in _MAJOR])
        pos = int(rng.integers(len(scale) // 4, 3 * len(scale) // 4 + 1))
        start = 0.0  # in beats
        while (start + 0.25) * beat < seconds:
            dur = float(rng.choice(list(_NOTE_VALUES), p=[0.1, 0.35, 0.35, 0.1, 0.1]))
            dur = min(dur, seconds / beat - start)
            pos = int(np.clip(pos + rng.integers(-2, 3), 0, len(scale) - 1))
            if rng.random() > 0.1:  # else a rest
                on, off = start * beat, (start + dur) * beat
                tail = min(off + 3 * timbre.release, seconds) - on
                wave = synth_note(int(scale[pos]), int(rng.integers(40, 111)), timbre, sample_rate,
                                  tail, off - on, rng)  # fmt: skip
                i = int(on * sample_rate)
                mix[i : i + len(wave)] += wave[: n - i]
                rows.append([i, int(off * sample_rate), code, int(scale[pos]), round(start, 4),
                             dur, _NOTE_VALUES.get(dur, "Unknown")])  # fmt: skip
            start += dur
    mix *= 0.9 / (np.abs(mix).max() + 1e-9)
    rows.sort(key=lambda r: (r[0], r[3]))
    return mix, rows


def write_demo_musicnet(
    root: str | os.PathLike,
    seed: int = 0,
    num_train: int = 8,
    num_test: int = 3,
    seconds: tuple[float, float] = (30.0, 45.0),
    sample_rate: int = MUSICNET_SAMPLE_RATE,
) -> Path:
    """Write ``root/musicnet/{train,test}_{data,labels}`` and ``root/musicnet_metadata.csv``.

    44.1 kHz mono 16-bit WAVs of ``seconds`` (uniform range) each; test recordings take
    the real test ids. Returns ``root``.
    """
    if num_test > len(MUSICNET_TEST_IDS):
        raise ValueError(f"at most {len(MUSICNET_TEST_IDS)} test recordings")
    root = Path(root)
    rng = np.random.default_rng(seed)
    base = root / "musicnet"
    train_ids = [i for i in range(1727, 1727 + num_train + len(MUSICNET_TEST_IDS))
                 if i not in MUSICNET_TEST_IDS][:num_train]  # fmt: skip
    meta = []
    for split, ids in (("train", train_ids), ("test", MUSICNET_TEST_IDS[:num_test])):
        (base / f"{split}_data").mkdir(parents=True, exist_ok=True)
        (base / f"{split}_labels").mkdir(parents=True, exist_ok=True)
        for rec_id in ids:
            ensemble = list(ENSEMBLES)[int(rng.integers(len(ENSEMBLES)))]
            dur = float(rng.uniform(*seconds))
            wave, rows = synth_piece(ENSEMBLES[ensemble], dur, sample_rate, rng)
            write_wav16(base / f"{split}_data" / f"{rec_id}.wav", wave, sample_rate)
            with open(base / f"{split}_labels" / f"{rec_id}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(LABEL_HEADER)
                w.writerows(rows)
            meta.append([rec_id, "Synthetic", f"Demo piece {rec_id}", "1. Moderato", ensemble,
                         "lightning_w2v demo (synthetic)", "synthetic", f"DEMO-{rec_id}",
                         int(dur)])  # fmt: skip
    with open(root / "musicnet_metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(METADATA_HEADER)
        w.writerows(sorted(meta))
    _readme(root, "MusicNet", f"write_demo_musicnet(seed={seed})")
    return root
