"""What the clip data sets' readers and synthetic stand-ins share."""
from __future__ import annotations

import csv
import importlib.resources
import io
import math
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..demo import write_wav16

SPLIT_FILE = "split.tsv"  # a root's own split list (path<TAB>split), used instead of the published one


def published_split(name: str) -> list[tuple[str, str]]:
    """``(relative path, split)`` rows of a split list shipped in ``lightning_w2v/data/splits/``."""
    data = (importlib.resources.files("lightning_w2v.data") / "splits" / name).read_bytes()
    if name.endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    return read_split_rows(io.StringIO(data.decode()), name)


def read_split_rows(handle, where: str) -> list[tuple[str, str]]:
    rows = list(csv.reader(handle, delimiter="\t"))
    if not rows or rows[0] != ["path", "split"]:
        raise DataError(f"{where}: a split list starts with the header path<TAB>split")
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or row[1] not in ("train", "valid", "test"):
            raise DataError(f"{where}, line {number}: expected <path><TAB>train|valid|test, got {row!r}")
        out.append((row[0], row[1]))
    return out


def split_rows(root: Path, published: str) -> tuple[list[tuple[str, str]], str]:
    """The root's own ``split.tsv`` if it has one (a synthetic stand-in's, or a user's), else the published list;
    and where it came from."""
    own = root / SPLIT_FILE
    if own.is_file():
        with own.open(newline="", encoding="utf-8") as handle:
            return read_split_rows(handle, str(own)), str(own)
    return published_split(published), f"the published split ({published})"


def write_split(root: Path, rows: list[tuple[str, str]]) -> None:
    with open(root / SPLIT_FILE, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["path", "split"])
        writer.writerows(rows)


def tone_mix(pitches: list[float], seconds: float, rate: int, rng: np.random.Generator, brightness: float = 1.0,
             pulse: float = 0.0, loop_seconds: float | None = None) -> np.ndarray:
    """A short synthetic texture: harmonic tones at ``pitches`` (MIDI), ``brightness`` the harmonics' decay,
    ``pulse`` beats per second of an amplitude envelope (0: steady), a little noise. ``loop_seconds``: make
    that much and repeat it (long stand-in clips at a fraction of the synthesis)."""
    total = int(seconds * rate)
    if loop_seconds is not None and loop_seconds < seconds:
        loop = tone_mix(pitches, loop_seconds, rate, rng, brightness, pulse)
        return np.tile(loop, -(-total // len(loop)))[:total]
    t = np.arange(total) / rate
    wave = np.zeros_like(t)
    for pitch in pitches:
        f = 440.0 * 2 ** ((pitch - 69) / 12)
        for k in range(1, 6):
            if k * f < rate / 2.2:
                wave += np.sin(2 * math.pi * k * f * t + rng.uniform(0, 2 * math.pi)) / k ** (2.0 / brightness)
    if pulse:
        wave *= 0.55 + 0.45 * np.cos(2 * math.pi * pulse * t) ** 2
    wave += 0.02 * rng.standard_normal(len(t))
    return (0.8 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def write_audio(path: Path, wave: np.ndarray, rate: int) -> None:
    """WAV, AU or MP3 by the file's suffix (soundfile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".wav":
        write_wav16(path, wave, rate)
        return
    import soundfile as sf

    kind = {".au": ("AU", "PCM_16"), ".mp3": ("MP3", None)}[path.suffix]
    sf.write(path, wave, rate, format=kind[0], subtype=kind[1])
