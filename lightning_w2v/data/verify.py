"""Check an extracted data set (NSynth, MusicNet, MAESTRO, GTZAN, MagnaTagATune, GiantSteps, Emomusic): files
present, counts, audio headers, label files.

Audio is inspected through its header only (``soundfile.info``), so even ``"all"`` is
fast. Command line: ``lightning-w2v data verify nsynth --root data``.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import ConfigError, DataError, DataNotFoundError
from . import formats
from .audio import AudioFileError
from .audio import audio_info as _audio_info
from .formats import (  # noqa: F401
    MAESTRO_COUNTS,
    MUSICNET_COUNTS,
    MUSICNET_SAMPLE_RATE,
    MUSICNET_TEST_IDS,
    NSYNTH_COUNTS,
    NSYNTH_NUM_SAMPLES,
    NSYNTH_SAMPLE_RATE,
)
from .maestro import read_maestro_index, read_midi_notes
from .notes import LabelFileError, read_musicnet_labels

NSYNTH_FRAMES = NSYNTH_NUM_SAMPLES
MUSICNET_LABEL_HEADER = ",".join(formats.MUSICNET_LABEL_HEADER)  # the CSV's first line
CHECK_MODES = ("sample", "all", "none")
MAESTRO_RATES = (44_100, 48_000)


@dataclass
class CorruptFile:
    """A file that exists but is unusable, with the reason."""

    path: str  # relative to the data set root, POSIX separators
    reason: str


@dataclass
class VerifyReport:
    """Result of :func:`verify_dataset`. Paths are relative to ``root``."""

    name: str
    root: Path
    counts: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # found, expected
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    corrupt: list[CorruptFile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # structural problems
    check_audio: str = "sample"
    audio_checked: int = 0
    audio_total: int = 0

    @property
    def count_mismatches(self) -> list[str]:
        """Splits whose found count differs from the expected one."""
        return [s for s, (found, exp) in self.counts.items() if exp is not None and found != exp]

    @property
    def sampled(self) -> bool:
        """Whether only some of the audio files were read (``check_audio="sample"``)."""
        return self.check_audio == "sample" and self.audio_checked < self.audio_total

    @property
    def ok(self) -> bool:
        """True when nothing is missing, extra, corrupt or miscounted."""
        return not (self.missing or self.extra or self.corrupt or self.errors
                    or self.count_mismatches)

    def format(self, max_items: int = 20) -> str:
        """A human-readable report listing at most ``max_items`` entries per section."""
        verdict = "OK" if self.ok else "FAILED"
        if self.sampled:
            verdict += (f" (audio: only a sample of {self.audio_checked} of {self.audio_total} files was read; "
                        "--check-audio all reads every file)")
        lines = [f"{self.name} at {self.root}: {verdict}", "Counts (found / expected):"]
        for split, (found, exp) in self.counts.items():
            status = "" if exp is None else ("ok" if found == exp else "MISMATCH")
            lines.append(f"  {split:<10} {found:>7} / {exp if exp is not None else '-':<7} {status}")
        lines.append(f"Audio headers checked: {self.audio_checked} of {self.audio_total} files "
                     f"(mode: {self.check_audio})")
        sections: list[tuple[str, list[str]]] = [
            ("Problems", self.errors),
            ("Missing files", self.missing),
            ("Extra files", self.extra),
            ("Corrupt files", [f"{c.path}: {c.reason}" for c in self.corrupt]),
        ]
        for title, items in sections:
            if not items:
                continue
            lines.append(f"{title} ({len(items)}):")
            lines += [f"  - {item}" for item in items[:max_items]]
            if len(items) > max_items:
                lines.append(f"  ... and {len(items) - max_items} more")
        return "\n".join(lines)

    __str__ = format


def _check_wav(path: Path, sample_rate: int, channels: int | None, frames: int | None,
               subtype: str | None) -> str | None:
    """Why the wav at ``path`` is unusable (from its header, truncation included), or None."""
    try:
        info = _audio_info(path)  # parses the RIFF chunks: a truncated file is caught here
    except AudioFileError as exc:
        return exc.problem
    problems = []
    if info.samplerate != sample_rate:
        problems.append(f"sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    if channels is not None and info.channels != channels:
        problems.append(f"{info.channels} channels, expected {channels}")
    if frames is not None and info.frames != frames:
        problems.append(f"length {info.frames} frames, expected {frames}")
    if subtype is not None and info.subtype != subtype:
        problems.append(f"sample format {info.subtype}, expected {subtype}")
    return "; ".join(problems) or None


def _pick(items: Sequence[str], mode: str, sample_size: int, rng: random.Random) -> list[str]:
    if mode == "none":
        return []
    if mode == "all" or len(items) <= sample_size:
        return list(items)
    return sorted(rng.sample(list(items), sample_size))


def _stems(folder: Path, suffix: str) -> set[str]:
    if not folder.is_dir():
        return set()
    with os.scandir(folder) as it:
        return {e.name[: -len(suffix)] for e in it if e.name.endswith(suffix) and e.is_file()}


def _verify_nsynth(report: VerifyReport, root: Path, splits: Mapping[str, int | None],
                   mode: str, sample_size: int, rng: random.Random) -> None:
    for split, expected in splits.items():
        rel = f"nsynth-{split}"
        split_dir = root / rel
        report.counts[split] = (0, expected)
        if not split_dir.is_dir():
            report.errors.append(f"{rel}/ not found in {root}")
            continue
        try:
            examples = json.loads((split_dir / "examples.json").read_text())
            if not isinstance(examples, dict):
                raise ValueError("not a JSON object keyed by note_str")
        except (OSError, ValueError) as exc:
            report.errors.append(f"{rel}/examples.json unreadable: {exc}")
            examples = None
        if not (split_dir / "audio").is_dir():
            report.errors.append(f"{rel}/audio/ not found")
        wavs = _stems(split_dir / "audio", ".wav")
        if examples is None:
            present = sorted(wavs)
        else:
            notes = set(examples)
            report.missing += sorted(f"{rel}/audio/{n}.wav" for n in notes - wavs)
            report.extra += sorted(f"{rel}/audio/{n}.wav" for n in wavs - notes)
            present = sorted(notes & wavs)
        report.counts[split] = (len(present), expected)
        chosen = _pick(present, mode, sample_size, rng)
        report.audio_total += len(present)
        report.audio_checked += len(chosen)
        for note in chosen:
            reason = _check_wav(split_dir / "audio" / f"{note}.wav", NSYNTH_SAMPLE_RATE, 1,
                                NSYNTH_FRAMES, "PCM_16")
            if reason:
                report.corrupt.append(CorruptFile(f"{rel}/audio/{note}.wav", reason))


def _musicnet_dir(root: Path) -> Path:
    """``root/musicnet``, Kaggle's ``root/musicnet/musicnet``, or ``root`` itself."""
    for cand in (root / "musicnet", root / "musicnet" / "musicnet", root):
        if (cand / "train_data").is_dir():
            return cand
    return root / "musicnet"


def _verify_musicnet(report: VerifyReport, root: Path, splits: Mapping[str, int | None],
                     mode: str, sample_size: int, rng: random.Random,
                     test_ids: set[str]) -> None:
    base = _musicnet_dir(root)
    rel = base.relative_to(root).as_posix()  # "." when root holds train_data itself
    if not base.is_dir():
        report.errors.append(f"{rel}/ not found in {root}")
    for split, expected in splits.items():
        data, labels = base / f"{split}_data", base / f"{split}_labels"
        for folder in (data, labels):
            if base.is_dir() and not folder.is_dir():
                report.errors.append(f"{rel}/{folder.name}/ not found")
        wav_ids, label_ids = _stems(data, ".wav"), _stems(labels, ".csv")
        missing = {f"{rel}/{split}_data/{i}.wav" for i in label_ids - wav_ids}
        missing |= {f"{rel}/{split}_labels/{i}.csv" for i in wav_ids - label_ids}
        if split == "test" and test_ids:
            missing |= {f"{rel}/test_data/{i}.wav" for i in test_ids - wav_ids}
            report.extra += sorted(f"{rel}/test_data/{i}.wav (not an official test id)"
                                   for i in wav_ids - test_ids)
        elif test_ids:
            report.extra += sorted(f"{rel}/{split}_data/{i}.wav (an official test id)"
                                   for i in wav_ids & test_ids)
        report.missing += sorted(missing)
        report.counts[split] = (len(wav_ids), expected)
        present = sorted(wav_ids, key=lambda s: (len(s), s))
        chosen = _pick(present, mode, sample_size, rng)
        report.audio_total += len(present)
        report.audio_checked += len(chosen)
        for rec in chosen:
            reason = _check_wav(data / f"{rec}.wav", MUSICNET_SAMPLE_RATE, None, None, None)
            if reason:
                report.corrupt.append(CorruptFile(f"{rel}/{split}_data/{rec}.wav", reason))
        if mode == "none":
            continue
        for rec in sorted(label_ids):  # every label file is read in full: they are small
            try:
                read_musicnet_labels(labels / f"{rec}.csv")
            except LabelFileError as exc:
                reason = str(exc).removeprefix(str(labels / f"{rec}.csv")).lstrip(":, ")
                report.corrupt.append(CorruptFile(f"{rel}/{split}_labels/{rec}.csv", reason))


def _verify_maestro(report: VerifyReport, root: Path, splits: Mapping[str, int | None], mode: str,
                    sample_size: int, rng: random.Random) -> None:
    try:
        performances = read_maestro_index(root)
    except (DataError, LabelFileError) as exc:
        report.errors.append(str(exc))
        return
    base = performances[0].audio.parents[1] if performances else root
    for split, expected in splits.items():
        mine = [p for p in performances if p.split == split]
        report.counts[split] = (len(mine), expected)
        chosen = _pick([p.audio.relative_to(base).as_posix() for p in mine], mode, sample_size, rng)
        report.audio_total += len(mine)
        report.audio_checked += len(chosen)
        by_audio = {p.audio.relative_to(base).as_posix(): p for p in mine}
        for audio in chosen:
            performance = by_audio[audio]
            rate = _audio_info(performance.audio).samplerate if performance.audio.is_file() else None
            reason = _check_wav(performance.audio, rate or 44_100, None, None, None)
            if reason is None and rate not in MAESTRO_RATES:
                reason = f"sample rate {rate} Hz, expected one of {', '.join(map(str, MAESTRO_RATES))}"
            if reason:
                report.corrupt.append(CorruptFile(audio, reason))
            try:
                read_midi_notes(performance.midi)
            except LabelFileError as exc:
                report.corrupt.append(CorruptFile(performance.midi.relative_to(base).as_posix(),
                                                  str(exc).split(": ", 1)[-1]))


CLIP_SETS = {  # name -> (data module class path, expected counts, the sample rate every file has, if one)
    "gtzan": ("lightning_w2v.data.sets.gtzan.GTZANDataModule", {"train": 443, "valid": 197, "test": 290}, 22_050),
    "mtt": ("lightning_w2v.data.sets.mtt.MTTDataModule", {"train": 15_244, "valid": 1_529, "test": 4_332}, 16_000),
    "giantsteps": ("lightning_w2v.data.sets.giantsteps.GiantStepsKeyDataModule",
                   {"train": None, "valid": None, "test": 604}, None),
    "emomusic": ("lightning_w2v.data.sets.emomusic.EmomusicDataModule", {"train": 504, "valid": 115, "test": 125},
                 44_100),
}


def _verify_clips(report: VerifyReport, name: str, root: Path, splits: Mapping[str, int | None], mode: str,
                  sample_size: int, rng: random.Random) -> None:
    """A clip-level set: its module lists (and so checks) the clips and labels; then counts and audio headers."""
    import importlib

    class_path, _, rate = CLIP_SETS[name]
    module_name, _, class_name = class_path.rpartition(".")
    module = getattr(importlib.import_module(module_name), class_name)(root=str(root), progress=False)
    try:
        clips = module.clips()
    except (DataError, DataNotFoundError) as exc:
        report.errors.append(str(exc))
        return
    for split, expected in splits.items():
        mine = sorted({str(c.path) for c in clips if c.split == split})
        report.counts[split] = (len(mine), expected)
        chosen = _pick(mine, mode, sample_size, rng)
        report.audio_total += len(mine)
        report.audio_checked += len(chosen)
        for path in chosen:
            try:
                info = _audio_info(path)
            except AudioFileError as exc:
                report.corrupt.append(CorruptFile(_relative(path, root), exc.problem))
                continue
            if rate is not None and info.samplerate != rate:
                report.corrupt.append(CorruptFile(_relative(path, root),
                                                  f"sample rate {info.samplerate} Hz, expected {rate} Hz"))


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def verify_dataset(name: str, root: str | os.PathLike,
                   expected_counts: Mapping[str, int | None] | None = None,
                   check_audio: str = "sample", sample_size: int = 200, seed: int = 0, *,
                   test_ids: Iterable[int] | None = None) -> VerifyReport:
    """Verify the extracted data set ``name`` (nsynth, musicnet, maestro, or a clip set: gtzan, mtt, giantsteps,
    emomusic) under ``root``.

    ``expected_counts`` maps split -> expected number of notes/recordings (None: don't
    check); its keys choose the splits to verify (default: all official splits with the
    official counts). ``check_audio``: "sample" reads the headers of ``sample_size``
    files per split picked with ``seed``, "all" of every file, "none" skips audio (and
    label) checks. NSynth audio must be 16 kHz mono PCM16 of 64000 frames; MusicNet 44.1 kHz,
    every label CSV well formed; MAESTRO 44.1 or 48 kHz, the index CSV naming existing files
    and the sampled performances' MIDI readable; a clip set's layout, labels and split as its data module reads
    them, its audio decodable (GTZAN at 22,050 Hz, MTT 16 kHz, Emomusic 44.1 kHz).
    ``test_ids`` (MusicNet) defaults to the official 10 test ids;
    pass an empty list to skip that check.
    """
    if check_audio not in CHECK_MODES:
        raise ConfigError(f"--check-audio must be one of {CHECK_MODES}, not {check_audio!r}")
    root = Path(root)
    rng = random.Random(seed)
    report = VerifyReport(name=name, root=root, check_audio=check_audio)
    if name == "nsynth":
        splits = dict(NSYNTH_COUNTS if expected_counts is None else expected_counts)
        _verify_nsynth(report, root, splits, check_audio, sample_size, rng)
    elif name == "musicnet":
        splits = dict(MUSICNET_COUNTS if expected_counts is None else expected_counts)
        ids = {str(i) for i in (MUSICNET_TEST_IDS if test_ids is None else test_ids)}
        _verify_musicnet(report, root, splits, check_audio, sample_size, rng, ids)
    elif name == "maestro":
        splits = dict(MAESTRO_COUNTS if expected_counts is None else expected_counts)
        _verify_maestro(report, root, splits, check_audio, sample_size, rng)
    elif name in CLIP_SETS:
        splits = dict(CLIP_SETS[name][1] if expected_counts is None else expected_counts)
        _verify_clips(report, name, root, splits, check_audio, sample_size, rng)
    else:
        raise ValueError(f"Unknown data set {name!r}; choose one of nsynth, musicnet, maestro, {', '.join(CLIP_SETS)}.")
    return report


def verify_main(name: str, root: str | os.PathLike, **kwargs) -> int:
    """Verify, print the report, and return an exit code: 0 when OK, 1 otherwise."""
    report = verify_dataset(name, root, **kwargs)
    print(report.format())
    return 0 if report.ok else 1
