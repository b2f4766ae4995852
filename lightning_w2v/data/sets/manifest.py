"""Any labelled folder, no code: a manifest (CSV or JSON lines) lists the clips and their labels.

Columns (CSV header, or the keys of each JSON object):

- ``path``: the audio file, relative to the manifest's folder (or absolute); any format the
  16 kHz cache reads (WAV, FLAC, AU, MP3, ...);
- ``split``: ``train``, ``valid`` or ``test``;
- exactly one kind of label, which sets the task's kind:
  ``label`` (one class per clip: accuracy and macro F1), ``labels`` (several, ``;``-separated in
  a CSV, a list or a ``;``-string in JSON: macro ROC-AUC and average precision), or
  ``target_<name>`` columns (numbers: R² per target and their mean);
- optional ``start`` / ``end``: the clip's span in seconds within the file (empty: the whole file).

The classes (tags) are those of the training split, sorted; a label of the valid or test split
that training never shows is an error naming the row, as is a missing file, a non-number target,
an empty split or a clip shorter than one slice.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DataError, DataNotFoundError
from ..clips import SPLITS, Clip, ClipDataModule
from .common import tone_mix, write_audio

LABEL, LABELS, TARGET_PREFIX = "label", "labels", "target_"


class ManifestError(DataError):
    """A malformed manifest; the message names the file and the row."""


def read_manifest_rows(path: Path) -> list[dict[str, Any]]:
    """The manifest's rows as dicts, with ``_row`` (the line number, for messages)."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: the manifest does not exist; set data.init_args.manifest to a CSV or "
                                "JSON-lines file with path, split and label | labels | target_* columns")
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}, line {number}: not a JSON object ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ManifestError(f"{path}, line {number}: not a JSON object")
            rows.append({**row, "_row": number})
        return rows
    with path.open(newline="", encoding="utf-8") as handle:
        return [{**row, "_row": number} for number, row in enumerate(csv.DictReader(handle), start=2)]


def manifest_kind(columns: set[str], path: Path) -> tuple[str, list[str]]:
    """The task kind from the columns, and the target names (regression)."""
    missing = {"path", "split"} - columns
    if missing:
        raise ManifestError(f"{path}: the column(s) {', '.join(sorted(missing))} are missing; a manifest has "
                            "path, split and label | labels | target_<name> columns")
    targets = sorted(c[len(TARGET_PREFIX):] for c in columns if c.startswith(TARGET_PREFIX))
    kinds = [kind for kind, present in (("single", LABEL in columns), ("multi", LABELS in columns),
                                        ("regression", bool(targets))) if present]
    if len(kinds) != 1:
        found = "none" if not kinds else " and ".join(kinds)
        raise ManifestError(f"{path}: a manifest has exactly one kind of label column: label (one class), labels "
                            f"(several, ;-separated) or target_<name> (numbers); found {found}")
    return kinds[0], targets


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [t.strip() for t in str(value or "").split(";") if t.strip()]


def _seconds(row: dict, key: str, where: str) -> float | None:
    value = row.get(key)
    if value in (None, ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: {key}={value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ManifestError(f"{where}: {key}={value!r} must be a non-negative number of seconds")
    return seconds


def read_manifest(path: str | Path) -> tuple[list[Clip], dict[str, Any]]:
    """The clips of a manifest and its task definition ``{"kind", "names"}`` (see the module docstring)."""
    path = Path(path).expanduser()
    rows = read_manifest_rows(path)
    if not rows:
        raise ManifestError(f"{path}: the manifest lists no clips")
    columns = set().union(*(set(r) for r in rows)) - {"_row"}
    kind, targets = manifest_kind(columns, path)
    base = path.parent
    for row in rows:
        where = f"{path}, row {row['_row']}"
        if row.get("split") not in SPLITS:
            raise ManifestError(f"{where}: split={row.get('split')!r}; use train, valid or test")
        if not row.get("path"):
            raise ManifestError(f"{where}: the path is empty")
    train = [r for r in rows if r["split"] == "train"]
    if kind == "single":
        names = sorted({str(r.get(LABEL, "")).strip() for r in train} - {""})
    elif kind == "multi":
        names = sorted({tag for r in train for tag in _tags(r.get(LABELS))})
    else:
        names = targets
    if not names:
        raise ManifestError(f"{path}: the train split has no labels")
    position = {name: i for i, name in enumerate(names)}
    clips = []
    for row in rows:
        where = f"{path}, row {row['_row']}"
        audio = Path(row["path"]).expanduser()
        audio = audio if audio.is_absolute() else base / audio
        if not audio.is_file():
            raise DataNotFoundError(f"{where}: {audio} does not exist; fix the path (relative to {base})")
        target: int | tuple[float, ...]
        if kind == "single":
            label = str(row.get(LABEL, "")).strip()
            if label not in position:
                raise ManifestError(f"{where}: label {label!r} of the {row['split']} split is not among the "
                                    f"training labels ({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
            target = position[label]
        elif kind == "multi":
            tags = _tags(row.get(LABELS))
            unknown = [t for t in tags if t not in position]
            if unknown:
                raise ManifestError(f"{where}: tag {unknown[0]!r} of the {row['split']} split is not among the "
                                    "training tags")
            target = tuple(float(name in tags) for name in names)
        else:
            values = []
            for name in names:
                value = row.get(TARGET_PREFIX + name)
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = math.nan
                if not math.isfinite(number):
                    raise ManifestError(f"{where}: {TARGET_PREFIX}{name}={value!r} is not a finite number")
                values.append(number)
            target = tuple(values)
        start, end = _seconds(row, "start", where), _seconds(row, "end", where)
        if start is not None and end is not None and end <= start:
            raise ManifestError(f"{where}: end={end} is not after start={start}")
        clips.append(Clip(audio, row["split"], target, start, end))
    return clips, {"kind": kind, "names": names}


class ManifestDataModule(ClipDataModule):
    """The clips a manifest lists (see the module docstring); the task kind follows from its columns.

    Args:
        manifest: the CSV or JSON-lines file.
        root: where the 16 kHz cache goes by default (default: the manifest's folder).
    """

    dataset_name = "manifest"
    tasks = ("manifest",)

    def __init__(self, manifest: str, root: str | None = None, task: str = "manifest",
                 slice_seconds: float | None = None, cache_dir: str | None = None, batch_size: int = 32,
                 num_workers: int = 0, seed: int = 0, pin_memory: bool = False, progress: bool = True) -> None:
        if not manifest:
            raise ConfigError("data.init_args.manifest: set it to a CSV or JSON-lines manifest")
        self.manifest = Path(manifest).expanduser()
        super().__init__(root or str(self.manifest.parent), task, slice_seconds, cache_dir, batch_size, num_workers,
                         seed, pin_memory, progress)
        self._definition: dict[str, Any] | None = None

    def clips(self) -> list[Clip]:
        clips, self._definition = read_manifest(self.manifest)
        return clips

    @property
    def label_key(self) -> str:
        return "targets" if self.task_definition()["kind"] == "regression" else "labels"

    def task_definition(self) -> dict[str, Any]:
        """``{"kind", "names"}`` of the manifest (the model's ``task_definition``)."""
        if self._definition is None:
            self.all_clips()
        assert self._definition is not None
        return self._definition

    @staticmethod
    def describe_task(init_args: Any) -> dict[str, Any]:
        """The task definition of the manifest a config names (the CLI hands it to the model)."""
        return read_manifest(init_args["manifest"])[1]


SYNTH_CLASSES = ("low", "middle", "high")
SYNTH_TAGS = ("bass", "bright", "noisy")
SYNTH_TARGETS = ("decay", "register")


def write_synthetic_manifests(root: str | Path, seed: int = 0, clips: int = 96, seconds: float = 6.0,
                              rate: int = 16_000) -> Path:
    """SYNTHETIC clips (WAV, ``rate`` Hz) and three manifests over them, one of each kind:
    ``single.csv`` (label: the register), ``tags.csv`` (labels: a bass tone, bright timbre, noise)
    and ``targets.jsonl`` (target_decay: the harmonics' decay exponent, target_register); half train, a quarter
    valid and test.
    Every label is audible, so each kind can be learnt. Returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    single, tags, targets = [], [], []
    for n in range(clips):
        split = "train" if n % 4 < 2 else ("valid" if n % 4 == 2 else "test")
        register = n % 3
        brightness = float(rng.uniform(0.5, 2.0))
        bass, noisy = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        pitches = [48 + 12 * register + int(rng.integers(0, 5)) + o for o in (0, 4, 7)] + ([28] if bass else [])
        wave = tone_mix(pitches, seconds, rate, rng, brightness=brightness)
        if noisy:
            wave = wave + 0.25 * rng.standard_normal(len(wave)).astype(np.float32)
        relative = f"audio/clip{n:03d}.wav"
        write_audio(root / relative, 0.9 * wave / np.abs(wave).max(), rate)
        single.append({"path": relative, "split": split, "label": SYNTH_CLASSES[register]})
        present = [t for t, on in zip(SYNTH_TAGS, (bass, brightness > 1.25, noisy)) if on]
        tags.append({"path": relative, "split": split, "labels": ";".join(present), "start": "0.5", "end": ""})
        targets.append({"path": relative, "split": split, "target_decay": round(2 / brightness, 4),
                        "target_register": register + float(rng.normal(0, 0.1))})
    for name, rows in (("single.csv", single), ("tags.csv", tags)):
        with open(root / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    (root / "targets.jsonl").write_text("".join(json.dumps(row) + "\n" for row in targets))
    (root / "README.txt").write_text("SYNTHETIC LABELLED CLIPS - NOT A REAL DATA SET.\n\nWritten by lightning_w2v."
                                     f"data.sets.manifest.write_synthetic_manifests(seed={seed}): single.csv (one "
                                     "class), tags.csv (several), targets.jsonl (numbers).\n")
    return root
