"""Emomusic (1000 Songs for Emotional Analysis of Music, Soleymani et al. 2013): static arousal and valence.

Layout, as distributed (``clips_45sec.tar.gz`` and ``annotations.tar.gz`` extracted under ROOT):
``ROOT/clips_45seconds/<song_id>.mp3`` (45 s excerpts, 44.1 kHz), ``static_annotations.csv``
(``song_id``, ``mean_arousal``, ``std_arousal``, ``mean_valence``, ``std_valence``; ratings on
1-9) and ``songs_info.csv`` (with ``song_id``, ``Artist`` and ``Mediaeval 2013 set``), either
directly under ROOT or in ``ROOT/annotations/``. The 744 songs left after the set's own
de-duplication are the ones with static annotations.

The split, as MARBLE and JukeMIR make it: the MediaEval 2013 ``evaluation`` songs are the test
split (125); the ``development`` songs are split train / valid by the SHA-1 of the artist's name
(lower-cased, letters and spaces only), 8 of every 10 hash values train (published counts
504 / 115). Targets are (arousal, valence), z-scored with the training songs' statistics (MARBLE
uses all development songs'); R² per dimension and their mean. 5 s slices, a song's slices
averaged at test.
"""
from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np

from ...errors import DataError, DataNotFoundError
from ..clips import Clip, ClipDataModule
from .common import tone_mix, write_audio

DIMENSIONS = ("arousal", "valence")
SET_COLUMN = "Mediaeval 2013 set"


def artist_split(artist: str) -> str:
    name = re.sub(r"[^a-z ]", "", artist.lower())
    return "train" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10 < 8 else "valid"


def _annotation(root: Path, name: str) -> Path:
    for candidate in (root / name, root / "annotations" / name):
        if candidate.is_file():
            return candidate
    raise DataNotFoundError(
        f"Emomusic not found under {root}: expected {name} (in ROOT or ROOT/annotations/) and clips_45seconds/"
        "<song_id>.mp3; download clips_45sec.tar.gz and annotations.tar.gz from cvml.unige.ch/databases/emoMusic/"
        f" and extract them there, or try the commands with a stand-in, `lightning-w2v data synth emomusic --root "
        f"{root}`.")


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = [c for c in columns if c not in fields]
        if missing:
            raise DataError(f"{path}: column(s) {', '.join(missing)} missing from the header")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


class EmomusicDataModule(ClipDataModule):
    """Emomusic static arousal and valence (see the module docstring)."""

    dataset_name = "Emomusic"
    tasks = ("emomusic",)
    default_slice_seconds = 5.0

    def __init__(self, root: str, task: str = "emomusic", slice_seconds: float | None = None,
                 cache_dir: str | None = None, batch_size: int = 32, num_workers: int = 0, seed: int = 0,
                 pin_memory: bool = False, progress: bool = True) -> None:
        super().__init__(root, task, slice_seconds, cache_dir, batch_size, num_workers, seed, pin_memory, progress)

    @property
    def label_key(self) -> str:
        return "targets"

    def clips(self) -> list[Clip]:
        static = _annotation(self.root, "static_annotations.csv")
        info = _annotation(self.root, "songs_info.csv")
        songs = {row["song_id"]: row for row in _rows(info, ("song_id", "Artist", SET_COLUMN))}
        clips = []
        for number, row in enumerate(_rows(static, ("song_id", "mean_arousal", "mean_valence")), start=2):
            where = f"{static}, line {number}"
            song = row["song_id"]
            if song not in songs:
                raise DataError(f"{where}: song {song} has no row in {info.name}")
            try:
                target = tuple(float(row[f"mean_{d}"]) for d in DIMENSIONS)
            except ValueError:
                raise DataError(f"{where}: mean_arousal / mean_valence must be numbers") from None
            if not all(1 <= v <= 9 for v in target):
                raise DataError(f"{where}: ratings are on 1-9, got {target}")
            which = songs[song][SET_COLUMN].lower()
            split = "test" if which.startswith("evaluation") else artist_split(songs[song]["Artist"])
            path = self.root / "clips_45seconds" / f"{int(song)}.mp3"
            if not path.is_file():
                raise DataNotFoundError(f"{path} is missing (song {song} of {static.name}); re-extract "
                                        "clips_45sec.tar.gz")
            clips.append(Clip(path, split, target))
        return clips


def write_synthetic_emomusic(root: str | Path, seed: int = 0, songs: int = 40, seconds: float = 10.0) -> Path:
    """A SYNTHETIC Emomusic stand-in in the distributed layout (MP3 at 44.1 kHz, the two CSVs under
    ``annotations/``): arousal follows the tempo of a pulse, valence the mode and register. Returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = {"train": [], "valid": []}
    n = 0
    while len(names["train"]) < 9 or len(names["valid"]) < 3:  # artists of both splits, deterministically
        name = "Synthetic Artist " + "".join("abcdefghij"[int(d)] for d in str(n))  # letters: the hash sees them
        names[artist_split(name)].append(name)
        n += 1
    artists = names["train"][:9] + names["valid"][:3]
    static = [("song_id", "mean_arousal", "std_arousal", "mean_valence", "std_valence")]
    info = [("song_id", "file_name", "Artist", "Song title", SET_COLUMN)]
    for n in range(songs):
        song = 2 + n
        arousal, valence = rng.uniform(2, 8), rng.uniform(2, 8)
        tonic = 40 + int(3 * valence)
        third = 4 if valence > 5 else 3
        wave = tone_mix([tonic, tonic + third, tonic + 7], seconds, 44_100, rng, brightness=0.5 + arousal / 4,
                        pulse=0.5 + arousal / 2, loop_seconds=2.0)
        write_audio(root / "clips_45seconds" / f"{song}.mp3", wave, 44_100)
        static.append((str(song), f"{arousal:.2f}", "1.0", f"{valence:.2f}", "1.0"))
        which = "evaluation" if n % 4 == 3 else "development"
        info.append((str(song), f"{song}.mp3", artists[n % 12], f"Song {n}", which))
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for name, rows in (("static_annotations.csv", static), ("songs_info.csv", info)):
        with open(root / "annotations" / name, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
    (root / "README.txt").write_text("SYNTHETIC STAND-IN FOR EMOMUSIC - NOT EMOMUSIC.\n\nWritten by "
                                     f"lightning_w2v.data.sets.emomusic.write_synthetic_emomusic(seed={seed}).\n")
    return root
