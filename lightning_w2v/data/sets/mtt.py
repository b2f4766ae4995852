"""MagnaTagATune top-50 tagging (Law et al. 2009): 25,863 clips of about 29 s, MP3 at 16 kHz.

Layout, as distributed (``mp3.zip.001``-``003`` concatenated and unzipped into ``mp3/``, beside
``annotations_final.csv``): ``ROOT/annotations_final.csv`` (tab-separated, every value quoted:
``clip_id``, 188 tag columns of 0/1, ``mp3_path``) and ``ROOT/mp3/<0-9a-f>/<name>.mp3`` (the
hex folders directly under ROOT are read too).

The outputs are the 50 most frequent tags, in the order of the shipped ``mtt_top50_tags.txt``.
Splits (``split``):

- ``sota`` (default): the lists of Lee et al. 2017 that the music-tagging line of work uses
  (sota-music-tagging-models): clips with at least one top-50 tag and 29.1 s of audio,
  15,244 / 1,529 / 4,332, shipped as ``mtt_split.tsv.gz``;
- ``marble``: MARBLE's rule, by folder: ``0``-``b`` train, ``c`` valid, ``d``-``f`` test, every
  clip (18,706 / 1,825 / 5,329 once the three empty MP3s of the archive are left out).

A root with its own ``split.tsv`` uses that instead. Metrics: macro ROC-AUC and macro average
precision over the 50 tags, each file's slices averaged.
"""
from __future__ import annotations

import csv
import importlib.resources
from pathlib import Path

import numpy as np

from ...errors import ConfigError, DataError, DataNotFoundError
from ..clips import Clip, ClipDataModule
from .common import SPLIT_FILE, published_split, read_split_rows, tone_mix, write_audio, write_split

ANNOTATIONS = "annotations_final.csv"
PUBLISHED_SPLIT = "mtt_split.tsv.gz"
MTT_SPLITS = ("sota", "marble")
EMPTY_MP3S = (  # zero-byte files of the distributed archive (all in training folders)
    "6/norine_braun-now_and_zen-08-gently-117-146.mp3",
    "8/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3",
    "9/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_xiveme_ordre_couperin-88-117.mp3",
)


def top50_tags() -> tuple[str, ...]:
    text = (importlib.resources.files("lightning_w2v.data") / "splits" / "mtt_top50_tags.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


TOP50 = top50_tags()


def marble_split(mp3_path: str) -> str:
    folder = mp3_path.split("/", 1)[0]
    return "test" if folder in ("d", "e", "f") else ("valid" if folder == "c" else "train")


def find_mtt_root(root: str | Path) -> tuple[Path, Path]:
    """``(the annotations file, the folder holding the hex MP3 folders)``."""
    root = Path(root).expanduser()
    annotations = root / ANNOTATIONS
    if not annotations.is_file():
        raise DataNotFoundError(
            f"MagnaTagATune not found under {root}: expected {annotations} and mp3/<0-9a-f>/*.mp3 (mp3.zip.001-003 "
            "concatenated and unzipped into mp3/). Get them with `lightning-w2v data download mtt --root "
            f"{root}`, or try the commands with a stand-in, `lightning-w2v data synth mtt --root {root}`.")
    audio = root / "mp3" if (root / "mp3").is_dir() else root
    return annotations, audio


def read_annotations(path: Path, tags: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """``mp3_path -> multi-hot targets over tags`` from ``annotations_final.csv``."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None) or []
        missing = [c for c in ("clip_id", "mp3_path", *tags) if c not in header]
        if missing:
            raise DataError(f"{path}: column(s) {', '.join(repr(c) for c in missing[:5])} missing from the header "
                            "(a tab-separated clip_id, <tags>, mp3_path); re-download annotations_final.csv")
        columns = [header.index(t) for t in tags]
        where = header.index("mp3_path")
        out = {}
        for number, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise DataError(f"{path}, line {number}: {len(row)} fields, the header has {len(header)}")
            values = [row[c] for c in columns]
            if any(v not in ("0", "1") for v in values):
                raise DataError(f"{path}, line {number}: tag values must be 0 or 1")
            out[row[where]] = tuple(float(v) for v in values)
    return out


class MTTDataModule(ClipDataModule):
    """MagnaTagATune top-50 tagging (see the module docstring)."""

    dataset_name = "MagnaTagATune"
    tasks = ("mtt_tagging",)
    default_slice_seconds = 10.0

    def __init__(self, root: str, task: str = "mtt_tagging", split: str = "sota", slice_seconds: float | None = None,
                 cache_dir: str | None = None, batch_size: int = 32, num_workers: int = 0, seed: int = 0,
                 pin_memory: bool = False, progress: bool = True) -> None:
        if split not in MTT_SPLITS:
            raise ConfigError(f"data.init_args.split={split!r}: choose one of {', '.join(MTT_SPLITS)}")
        super().__init__(root, task, slice_seconds, cache_dir, batch_size, num_workers, seed, pin_memory, progress)

    def clips(self) -> list[Clip]:
        annotations, audio = find_mtt_root(self.root)
        targets = read_annotations(annotations, TOP50)
        own = self.root / SPLIT_FILE
        if own.is_file():
            with own.open(newline="", encoding="utf-8") as handle:
                rows = read_split_rows(handle, str(own))
        elif self.hparams.split == "sota":
            rows = published_split(PUBLISHED_SPLIT)
        else:
            rows = [(p, marble_split(p)) for p in targets if p not in EMPTY_MP3S]
        clips, missing = [], []
        for relative, split in rows:
            if relative not in targets:
                raise DataError(f"{annotations}: {relative} of the split list has no row; re-download "
                                f"{ANNOTATIONS}")
            path = audio / relative
            if not path.is_file():
                missing.append(relative)
                continue
            clips.append(Clip(path, split, targets[relative]))
        if missing:
            raise DataNotFoundError(f"{audio}: {len(missing)} MP3(s) of the split are missing, e.g. {missing[0]}; "
                                    "re-extract mp3.zip")
        return clips


def write_synthetic_mtt(root: str | Path, seed: int = 0, clips: int = 48, seconds: float = 10.5) -> Path:
    """A SYNTHETIC MagnaTagATune stand-in in the distributed layout: ``annotations_final.csv`` (tab-separated,
    quoted, the 50 tags and two others) and 16 kHz MP3s under ``mp3/<hex>/``, with its own ``split.tsv``.
    Each clip has one of five styles (a register and a timbre), and each style its ten tags. Returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    tags = (*TOP50, "no beat", "jazz")
    header = ["clip_id", *tags, "mp3_path"]
    rows, split_rows = [], []
    for n in range(clips):
        style = n % 5
        wave = tone_mix([40 + 9 * style + int(rng.integers(0, 4)) + o for o in (0, 7)], seconds, 16_000, rng,
                        brightness=0.6 + 0.4 * style, pulse=0.0 if style % 2 else 2.0, loop_seconds=2.0)
        relative = f"{'0123456789abcdef'[n % 16]}/synthetic_artist-album-{n:02d}-track-0-29.mp3"
        write_audio(root / "mp3" / relative, wave, 16_000)
        active = {TOP50[(10 * style + k) % 50] for k in range(10) if rng.random() < 0.8}
        rows.append([str(n), *("1" if t in active else "0" for t in tags), relative])
        split_rows.append((relative, "train" if n % 4 < 2 else ("valid" if n % 4 == 2 else "test")))
    with open(root / ANNOTATIONS, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
    write_split(root, split_rows)
    (root / "README.txt").write_text("SYNTHETIC STAND-IN FOR MAGNATAGATUNE - NOT MAGNATAGATUNE.\n\nWritten by "
                                     f"lightning_w2v.data.sets.mtt.write_synthetic_mtt(seed={seed}).\n")
    return root
