"""Tests for lightning_w2v.data.verify, plus builders of tiny NSynth/MusicNet trees.

The builders (``write_nsynth_split``, ``write_musicnet_tree``) are also used by
tests/test_download.py to make real archives in the official layouts.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import soundfile as sf

from lightning_w2v.commands import main
from lightning_w2v.data.verify import (
    MUSICNET_LABEL_HEADER,
    MUSICNET_TEST_IDS,
    verify_dataset,
    verify_main,
)

FAMILIES = {"bass": 0, "brass": 1, "flute": 2, "guitar": 3, "keyboard": 4, "mallet": 5,
            "organ": 6, "reed": 7, "string": 8, "synth_lead": 9, "vocal": 10}
SOURCES = {"acoustic": 0, "electronic": 1, "synthetic": 2}
QUALITIES = ["bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
             "nonlinear_env", "percussive", "reverb", "tempo-synced"]
NOTES = ("organ_electronic_001-060-127", "guitar_acoustic_010-064-075",
         "keyboard_synthetic_000-021-025")
TRAIN_IDS = (1727, 1728)


def nsynth_example(note_str: str, index: int) -> dict:
    """An examples.json entry with every field of the real NSynth files."""
    instrument_str, pitch, velocity = note_str.rsplit("-", 2)
    family, source, _ = instrument_str.rsplit("_", 2)
    qualities = [int(i == index % 10) for i in range(10)]
    return {
        "note": 1000 + index, "note_str": note_str, "instrument": index,
        "instrument_str": instrument_str, "pitch": int(pitch), "velocity": int(velocity),
        "sample_rate": 16000, "instrument_source": SOURCES[source],
        "instrument_source_str": source, "instrument_family": FAMILIES[family],
        "instrument_family_str": family, "qualities": qualities,
        "qualities_str": [q for q, on in zip(QUALITIES, qualities) if on],
    }


def write_wav(path: Path, seconds: float, sample_rate: int, seed: int = 0,
              channels: int = 1) -> None:
    """Write low-level noise (barely compressible) as 16-bit PCM."""
    frames = int(round(seconds * sample_rate))
    shape = (frames,) if channels == 1 else (frames, channels)
    data = 0.1 * np.random.default_rng(seed).standard_normal(shape)
    sf.write(str(path), data, sample_rate, subtype="PCM_16")


def write_nsynth_split(root: Path, split: str = "test", notes: Sequence[str] = NOTES) -> Path:
    """``root/nsynth-<split>/{examples.json,audio/<note_str>.wav}``, 16 kHz 4 s mono."""
    split_dir = root / f"nsynth-{split}"
    (split_dir / "audio").mkdir(parents=True)
    examples = {}
    for i, note in enumerate(notes):
        examples[note] = nsynth_example(note, i)
        write_wav(split_dir / "audio" / f"{note}.wav", 4.0, 16000, seed=i)
    (split_dir / "examples.json").write_text(json.dumps(examples, indent=4))
    return split_dir


def write_musicnet_tree(root: Path, train_ids: Sequence[int] = TRAIN_IDS,
                        test_ids: Sequence[int] = MUSICNET_TEST_IDS,
                        seconds: float = 0.05) -> Path:
    """``root/musicnet/{train,test}_{data,labels}/<id>.{wav,csv}`` with short 44.1 kHz wavs."""
    base = root / "musicnet"
    for split, ids in (("train", train_ids), ("test", test_ids)):
        (base / f"{split}_data").mkdir(parents=True)
        (base / f"{split}_labels").mkdir(parents=True)
        for rec in ids:
            write_wav(base / f"{split}_data" / f"{rec}.wav", seconds, 44100, seed=rec)
            rows = [MUSICNET_LABEL_HEADER, "9182,90078,43,53,4.0,1.5,Dotted Quarter",
                    "9182,33758,42,65,4.0,0.5,Eighth"]
            (base / f"{split}_labels" / f"{rec}.csv").write_text("\n".join(rows) + "\n")
    return base


# --------------------------------------------------------------------------- NSynth
@pytest.fixture
def nsynth_root(tmp_path: Path) -> Path:
    write_nsynth_split(tmp_path, "test")
    return tmp_path


def test_clean_nsynth_tree_passes(nsynth_root: Path, capsys) -> None:
    report = verify_dataset("nsynth", nsynth_root, {"test": 3}, check_audio="all")
    assert report.ok, report.format()
    assert report.counts == {"test": (3, 3)}
    assert report.audio_checked == 3
    assert verify_main("nsynth", nsynth_root, expected_counts={"test": 3}) == 0
    assert "OK" in capsys.readouterr().out


def test_deleted_and_wrong_rate_wavs_reported(nsynth_root: Path, capsys) -> None:
    audio = nsynth_root / "nsynth-test" / "audio"
    (audio / f"{NOTES[0]}.wav").unlink()
    write_wav(audio / f"{NOTES[1]}.wav", 4.0, 22050)
    report = verify_dataset("nsynth", nsynth_root, {"test": 3}, check_audio="all")
    assert not report.ok
    assert report.missing == [f"nsynth-test/audio/{NOTES[0]}.wav"]
    assert [c.path for c in report.corrupt] == [f"nsynth-test/audio/{NOTES[1]}.wav"]
    assert "sample rate 22050" in report.corrupt[0].reason
    assert report.counts["test"] == (2, 3)
    text = report.format()
    assert NOTES[0] in text and NOTES[1] in text and "FAILED" in text
    assert verify_main("nsynth", nsynth_root, expected_counts={"test": 3},
                       check_audio="all") == 1
    assert NOTES[1] in capsys.readouterr().out


def test_extra_unreadable_and_wrong_shape(nsynth_root: Path) -> None:
    audio = nsynth_root / "nsynth-test" / "audio"
    write_wav(audio / "stray_acoustic_000-060-100.wav", 4.0, 16000)
    (audio / f"{NOTES[0]}.wav").write_bytes(b"not a wav at all")
    write_wav(audio / f"{NOTES[1]}.wav", 1.0, 16000, channels=2)
    report = verify_dataset("nsynth", nsynth_root, {"test": 3}, check_audio="all")
    assert report.extra == ["nsynth-test/audio/stray_acoustic_000-060-100.wav"]
    reasons = {Path(c.path).stem: c.reason for c in report.corrupt}
    assert reasons[NOTES[0]].startswith("unreadable")
    assert "2 channels" in reasons[NOTES[1]] and "length 16000 frames" in reasons[NOTES[1]]


def test_count_mismatch_and_missing_split(nsynth_root: Path) -> None:
    report = verify_dataset("nsynth", nsynth_root, {"test": 4, "valid": 2}, check_audio="none")
    assert not report.ok
    assert set(report.count_mismatches) == {"test", "valid"}
    assert any("nsynth-valid/" in e for e in report.errors)
    assert verify_dataset("nsynth", nsynth_root, {"test": None}, check_audio="none").ok


def test_default_counts_are_official(nsynth_root: Path) -> None:
    report = verify_dataset("nsynth", nsynth_root, check_audio="none")
    assert report.counts["test"] == (3, 4096)
    assert report.counts["train"] == (0, 289_205) and report.counts["valid"] == (0, 12_678)


def test_sampling_is_bounded_and_seeded(nsynth_root: Path) -> None:
    audio = nsynth_root / "nsynth-test" / "audio"
    for note in NOTES:
        write_wav(audio / f"{note}.wav", 4.0, 8000)
    a = verify_dataset("nsynth", nsynth_root, {"test": 3}, sample_size=1, seed=3)
    b = verify_dataset("nsynth", nsynth_root, {"test": 3}, sample_size=1, seed=3)
    assert a.audio_checked == 1 and len(a.corrupt) == 1 and a.corrupt == b.corrupt
    assert verify_dataset("nsynth", nsynth_root, {"test": 3}, check_audio="none").ok
    with pytest.raises(ValueError):
        verify_dataset("nsynth", nsynth_root, check_audio="some")


def test_sample_mode_says_it_sampled_and_how_to_check_every_file(nsynth_root: Path, capsys) -> None:
    """A corrupt WAV outside the sample passes; the report says only a sample was read."""
    audio = nsynth_root / "nsynth-test" / "audio"
    report = verify_dataset("nsynth", nsynth_root, {"test": 3}, sample_size=1, seed=0)
    checked = report.audio_checked
    unchecked = [n for n in NOTES if not any(c.path.endswith(f"{n}.wav") for c in report.corrupt)]
    os.truncate(audio / f"{unchecked[-1]}.wav", 100)  # break a file; sampling may miss it
    sampled = verify_dataset("nsynth", nsynth_root, {"test": 3}, sample_size=1, seed=0)
    text = sampled.format()
    assert sampled.sampled and f"only a sample of {checked} of 3 files was read" in text
    assert "--check-audio all reads every file" in text
    every = verify_dataset("nsynth", nsynth_root, {"test": 3}, check_audio="all")
    assert not every.sampled and "only a sample" not in every.format()
    assert any(c.path.endswith(f"{unchecked[-1]}.wav") and "truncated" in c.reason for c in every.corrupt)


def test_broken_examples_json(nsynth_root: Path) -> None:
    (nsynth_root / "nsynth-test" / "examples.json").write_text("{truncated")
    report = verify_dataset("nsynth", nsynth_root, {"test": 3}, check_audio="none")
    assert not report.ok and "examples.json" in report.errors[0]


def test_cli(nsynth_root: Path, capsys) -> None:
    assert main(["data", "verify", "nsynth", "--root", str(nsynth_root), "--expect", "test=3"]) == 0
    assert main(["data", "verify", "nsynth", "--root", str(nsynth_root), "--expect", "test=5"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


# --------------------------------------------------------------------------- MusicNet
@pytest.fixture
def musicnet_root(tmp_path: Path) -> Path:
    write_musicnet_tree(tmp_path)
    return tmp_path


def test_clean_musicnet_tree_passes(musicnet_root: Path) -> None:
    report = verify_dataset("musicnet", musicnet_root, {"train": 2, "test": 10},
                            check_audio="all")
    assert report.ok, report.format()
    assert report.counts == {"train": (2, 2), "test": (10, 10)}
    assert report.audio_checked == 12


def test_musicnet_problems_reported(musicnet_root: Path) -> None:
    base = musicnet_root / "musicnet"
    (base / "test_data" / "2106.wav").unlink()
    write_wav(base / "train_data" / "1727.wav", 0.05, 16000)
    (base / "train_labels" / "1728.csv").write_text("onset,offset\n1,2\n")
    write_wav(base / "test_data" / "1728.wav", 0.05, 44100)
    (base / "test_labels" / "1728.csv").write_text(MUSICNET_LABEL_HEADER + "\n")
    report = verify_dataset("musicnet", musicnet_root, {"train": 2, "test": 10},
                            check_audio="all")
    assert not report.ok
    assert report.missing == ["musicnet/test_data/2106.wav"]
    assert report.extra == ["musicnet/test_data/1728.wav (not an official test id)"]
    corrupt = {c.path: c.reason for c in report.corrupt}
    assert "sample rate 16000 Hz" in corrupt["musicnet/train_data/1727.wav"]
    assert "is not MusicNet's" in corrupt["musicnet/train_labels/1728.csv"]


def test_musicnet_kaggle_nesting_and_flat_root_accepted(tmp_path: Path) -> None:
    write_musicnet_tree(tmp_path / "kaggle" / "musicnet")
    report = verify_dataset("musicnet", tmp_path / "kaggle", {"train": 2, "test": 10})
    assert report.ok, report.format()
    base = write_musicnet_tree(tmp_path / "flat")
    (base / "test_data" / "2106.wav").unlink()
    report = verify_dataset("musicnet", base, {"train": 2, "test": 10})
    assert report.missing == ["./test_data/2106.wav"]


def test_musicnet_missing_tree(tmp_path: Path) -> None:
    report = verify_dataset("musicnet", tmp_path)
    assert not report.ok and report.counts["train"] == (0, 320)
    assert "musicnet/ not found" in report.format()
    shutil.rmtree(tmp_path)
    with pytest.raises(ValueError):
        verify_dataset("no-such-set", tmp_path)
