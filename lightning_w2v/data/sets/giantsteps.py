"""GiantSteps key: 24 keys of electronic dance music; trained on GiantSteps MTG-key, tested on GiantSteps key.

Layout (the two GitHub repositories, their audio fetched by their ``audio_dl.sh``), under ROOT:

- ``giantsteps-key-dataset/`` (the test set, 604 two-minute previews): ``audio/<id>.LOFI.mp3``
  and ``annotations/key/<id>.LOFI.key`` (one line, e.g. ``Eb minor``);
- ``giantsteps-mtg-key-dataset/`` (training, 1,486 previews): ``audio/<id>.LOFI.mp3``,
  ``annotations/annotations.txt`` (tab-separated ``ID``, ``MANUAL KEY``, ``C``: the annotator's
  confidence 0-2) and ``annotations/beatport_metadata.txt`` (tab-separated, with ``ID`` and ``ARTIST``).

As MARBLE does: training keeps the tracks of confidence 2 whose key is a single key (1,159);
sharps are spelt as flats; valid is split off training by artist (SHA-1 of the lower-cased
artist, 16 of every 116 hash values), so no artist is in both. MARBLE also moves the
collaborators of valid artists to valid, which this rule does not: its 923 / 236 counts are
not reproduced exactly. Tracks are cut into 30 s slices; a track's slices are averaged at test.
Metrics: accuracy and MIREX's weighted key score (``mir_eval.key.weighted_score``).
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from ...errors import DataError, DataNotFoundError
from ..clips import Clip, ClipDataModule
from .common import tone_mix, write_audio

TONICS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
KEYS = tuple(f"{t} major" for t in TONICS) + tuple(f"{t} minor" for t in TONICS)  # MARBLE's order
SHARP_TO_FLAT = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}
TEST_DIR, TRAIN_DIR = "giantsteps-key-dataset", "giantsteps-mtg-key-dataset"
VALID_SHARE = (100, 16)  # of every 116 artist-hash values: train, valid


def normalise_key(text: str, where: str) -> str:
    """``"d# minor"`` -> ``"Eb minor"``; DataError naming ``where`` for anything else."""
    parts = text.strip().split()
    if len(parts) != 2 or parts[1].lower() not in ("major", "minor"):
        raise DataError(f"{where}: {text.strip()!r} is not a key (expected e.g. 'Eb minor')")
    tonic = parts[0][:1].upper() + parts[0][1:].lower()
    tonic = SHARP_TO_FLAT.get(tonic, tonic)
    key = f"{tonic} {parts[1].lower()}"
    if key not in KEYS:
        raise DataError(f"{where}: {text.strip()!r} is not one of the 24 keys (expected e.g. 'Eb minor')")
    return key


def artist_split(artist: str) -> str:
    value = int(hashlib.sha1(artist.strip().lower().encode()).hexdigest(), 16) % sum(VALID_SHARE)
    return "train" if value < VALID_SHARE[0] else "valid"


def _find(root: Path, name: str) -> Path:
    for candidate in (root / name, *sorted(root.glob(f"{name}-*"))):  # a GitHub zip adds -<commit>
        if (candidate / "annotations").is_dir():
            return candidate
    raise DataNotFoundError(
        f"GiantSteps key not found under {root}: expected {root}/{TEST_DIR}/ (annotations/key/*.key, "
        f"audio/*.LOFI.mp3) and {root}/{TRAIN_DIR}/ (annotations/annotations.txt, audio/*.LOFI.mp3): clone "
        "github.com/GiantSteps/giantsteps-key-dataset and giantsteps-mtg-key-dataset there and run each one's "
        f"audio_dl.sh, or try the commands with a stand-in, `lightning-w2v data synth giantsteps --root {root}`.")


def _table(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing; re-clone the repository")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if rows and any(c not in rows[0] for c in columns):
        raise DataError(f"{path}: expected the tab-separated column(s) {', '.join(columns)}")
    return rows


def _audio(folder: Path, track: str) -> Path:
    return folder / "audio" / f"{track}.LOFI.mp3"


class GiantStepsKeyDataModule(ClipDataModule):
    """GiantSteps key (see the module docstring); 24 classes."""

    dataset_name = "GiantSteps key"
    tasks = ("giantsteps_key",)
    default_slice_seconds = 30.0

    def __init__(self, root: str, task: str = "giantsteps_key", slice_seconds: float | None = None,
                 cache_dir: str | None = None, batch_size: int = 32, num_workers: int = 0, seed: int = 0,
                 pin_memory: bool = False, progress: bool = True) -> None:
        super().__init__(root, task, slice_seconds, cache_dir, batch_size, num_workers, seed, pin_memory, progress)

    def clips(self) -> list[Clip]:
        test_dir, train_dir = _find(self.root, TEST_DIR), _find(self.root, TRAIN_DIR)
        clips = []
        for key_file in sorted((test_dir / "annotations" / "key").glob("*.key")):
            track = key_file.name.removesuffix(".key").removesuffix(".LOFI")
            key = normalise_key(key_file.read_text(encoding="utf-8", errors="replace").split("\t")[0], str(key_file))
            clips.append(Clip(_audio(test_dir, track), "test", KEYS.index(key)))
        annotations = train_dir / "annotations"
        artists = {row["ID"]: row["ARTIST"] for row in _table(annotations / "beatport_metadata.txt", ("ID", "ARTIST"))}
        for number, row in enumerate(_table(annotations / "annotations.txt", ("ID", "MANUAL KEY", "C")), start=2):
            where = f"{annotations / 'annotations.txt'}, line {number}"
            if row["C"].strip() != "2" or "/" in row["MANUAL KEY"]:
                continue  # unsure or ambiguous: MARBLE leaves these out
            if row["ID"] not in artists:
                raise DataError(f"{where}: track {row['ID']} has no row in beatport_metadata.txt")
            key = normalise_key(row["MANUAL KEY"], where)
            clips.append(Clip(_audio(train_dir, row["ID"]), artist_split(artists[row["ID"]]), KEYS.index(key)))
        missing = [c.path for c in clips if not c.path.is_file()]
        if missing:
            raise DataNotFoundError(f"{missing[0]} and {len(missing) - 1} other track(s) are missing; run the "
                                    "repository's audio_dl.sh")
        return clips


def write_synthetic_giantsteps(root: str | Path, seed: int = 0, train_tracks: int = 14, test_tracks: int = 4,
                               seconds: float = 31.0, rate: int = 22_050) -> Path:
    """A SYNTHETIC GiantSteps stand-in in both repositories' layouts (MP3 at ``rate`` Hz): each track
    plays its key's scale and triad. Training also holds an unsure track (C=1) and an ambiguous one
    (two keys), which are left out, and artists hashed to both train and valid. Returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)

    def track_audio(key: str) -> np.ndarray:
        tonic = 48 + TONICS.index(key.split()[0])
        steps = (0, 2, 4, 5, 7, 9, 11) if key.endswith("major") else (0, 2, 3, 5, 7, 8, 10)
        chord = [tonic, tonic + steps[2], tonic + 7, tonic + 12]
        return tone_mix(chord + [tonic + s + 12 for s in steps[::2]], seconds, rate, rng, pulse=2.0,
                        loop_seconds=seconds / 10)

    test_dir, train_dir = root / TEST_DIR, root / TRAIN_DIR
    (test_dir / "annotations" / "key").mkdir(parents=True)
    (train_dir / "annotations").mkdir(parents=True)
    for n in range(test_tracks):
        key = KEYS[int(rng.integers(0, 24))]
        track = str(1_000_000 + n)
        write_audio(_audio(test_dir, track), track_audio(key), rate)
        (test_dir / "annotations" / "key" / f"{track}.LOFI.key").write_text(key)
    artists = {"train": [], "valid": []}
    n = 0
    while len(artists["train"]) < 6 or len(artists["valid"]) < 2:  # artists of both splits, deterministically
        name = f"Synthetic Artist {n}"
        artists[artist_split(name)].append(name)
        n += 1
    annotations, metadata = [("ID", "MANUAL KEY", "C")], [("ID", "ARTIST", "SONG TITLE", "BP KEY")]
    for n in range(train_tracks + 2):
        key = KEYS[n % 24].replace("Db", "C#").replace("Gb", "F#") if n < train_tracks else KEYS[0]
        confidence, written = ("2", key.lower() if n % 3 == 0 else key) if n < train_tracks else ("1", key)
        if n == train_tracks + 1:
            confidence, written = "2", "C major / A minor"
        artist = artists["valid"][n % 2] if n % 4 == 3 else artists["train"][n % 6]
        track = str(5000 + n)
        write_audio(_audio(train_dir, track), track_audio(KEYS[n % 24] if n < train_tracks else KEYS[0]), rate)
        annotations.append((track, written, confidence))
        metadata.append((track, artist, f"Track {n}", written))
    for name, rows in (("annotations.txt", annotations), ("beatport_metadata.txt", metadata)):
        with open(train_dir / "annotations" / name, "w", newline="") as handle:
            csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)
    (root / "README.txt").write_text("SYNTHETIC STAND-IN FOR GIANTSTEPS KEY - NOT GIANTSTEPS.\n\nWritten by "
                                     f"lightning_w2v.data.sets.giantsteps.write_synthetic_giantsteps(seed={seed}).\n")
    return root
