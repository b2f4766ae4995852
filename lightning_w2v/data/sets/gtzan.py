"""GTZAN genre (Tzanetakis and Cook 2002): 1,000 clips of 30 s at 22,050 Hz, 10 genres of 100 each.

Layout: ``<genre>/<genre>.000NN.au`` under ``genres/`` (the original ``genres.tar.gz``), or
``.wav`` under ``Data/genres_original/`` (common mirrors); both are read, and ``root`` may
also be the folder holding the genre folders. The split is the fault-filtered one
(Kereliuk, Sturm and Larsen 2015: 443 / 197 / 290 clips, no artist across splits),
shipped as file lists (``lightning_w2v/data/splits/``); a root with its own ``split.tsv``
uses that instead. The archive's public URL is not stable, so there is no download: get it
from a GTZAN mirror and ``lightning-w2v data verify gtzan`` checks the layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError, DataNotFoundError
from ..clips import Clip, ClipDataModule
from .common import split_rows, tone_mix, write_audio, write_split

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
GTZAN_RATE = 22_050
PUBLISHED_SPLIT = "gtzan_filtered_split.tsv"


class GTZANNotFoundError(DataNotFoundError):
    """The genre folders are not under the root; the message says where it looked."""


def find_gtzan_dir(root: str | Path) -> Path:
    root = Path(root).expanduser()
    for candidate in (root / "genres", root / "gtzan" / "genres", root / "Data" / "genres_original", root):
        if (candidate / "blues").is_dir():
            return candidate
    raise GTZANNotFoundError(
        f"GTZAN not found under {root}: expected {root}/genres/<genre>/<genre>.000NN.au (the layout of "
        "genres.tar.gz) or Data/genres_original/<genre>/<genre>.000NN.wav (common mirrors), with the genres "
        f"{', '.join(GENRES)}. Its original URL is gone: fetch it from a GTZAN mirror, or try the commands "
        f"with a synthetic stand-in, `lightning-w2v data synth gtzan --root {root}`.")


def gtzan_file(base: Path, relative: str) -> Path:
    """The listed clip (``blues/blues.00029.wav``) as ``.wav`` or ``.au``, whichever is there."""
    wav = base / relative
    au = wav.with_suffix(".au")
    return au if not wav.is_file() and au.is_file() else wav


class GTZANDataModule(ClipDataModule):
    """GTZAN genre classification (see the module docstring); 10 classes, accuracy."""

    dataset_name = "GTZAN"
    tasks = ("gtzan_genre",)
    default_slice_seconds = 10.0

    def __init__(self, root: str, task: str = "gtzan_genre", slice_seconds: float | None = None,
                 cache_dir: str | None = None, batch_size: int = 32, num_workers: int = 0, seed: int = 0,
                 pin_memory: bool = False, progress: bool = True) -> None:
        super().__init__(root, task, slice_seconds, cache_dir, batch_size, num_workers, seed, pin_memory, progress)

    def clips(self) -> list[Clip]:
        base = find_gtzan_dir(self.root)
        rows, source = split_rows(base, PUBLISHED_SPLIT)
        clips, missing = [], []
        for relative, split in rows:
            genre = relative.split("/")[0]
            if genre not in GENRES:
                raise DataError(f"{source}: {relative} is not in one of the genre folders {GENRES}")
            path = gtzan_file(base, relative)
            if not path.is_file():
                missing.append(relative)
                continue
            clips.append(Clip(path, split, GENRES.index(genre)))
        if missing:
            raise GTZANNotFoundError(f"{base}: {len(missing)} clip(s) of {source} are missing, e.g. {missing[0]} "
                                     "(.wav or .au); re-extract GTZAN")
        return clips


def write_synthetic_gtzan(root: str | Path, seed: int = 0, per_genre: int = 6, seconds: float = 12.0) -> Path:
    """A SYNTHETIC GTZAN stand-in in the original layout (``.au``, 22,050 Hz), with its own ``split.tsv``
    (of ``per_genre`` clips a genre: half train, a quarter each valid and test); returns the genres folder.
    Each genre is a register, a brightness and a pulse, so a genre can be learnt."""
    base = Path(root) / "genres"
    rng = np.random.default_rng(seed)
    rows = []
    for g, genre in enumerate(GENRES):
        for n in range(per_genre):
            register = 38 + 5 * g  # each genre its own register (five semitones apart), brightness and pulse
            pitches = [register + int(rng.integers(0, 3)) + o for o in (0, 4, 7)]
            wave = tone_mix(pitches, seconds, GTZAN_RATE, rng, brightness=0.6 + 0.15 * g, pulse=0.5 + 0.3 * g,
                            loop_seconds=2.0)
            relative = f"{genre}/{genre}.{n:05d}.wav"  # listed as .wav, stored as .au: both are read
            write_audio(base / genre / f"{genre}.{n:05d}.au", wave, GTZAN_RATE)
            split = "train" if n < per_genre // 2 else ("valid" if n < 3 * per_genre // 4 else "test")
            rows.append((relative, split))
    write_split(base, rows)
    (Path(root) / "README.txt").write_text("SYNTHETIC STAND-IN FOR GTZAN - NOT GTZAN.\n\nWritten by "
                                           f"lightning_w2v.data.sets.gtzan.write_synthetic_gtzan(seed={seed}).\n")
    return base
