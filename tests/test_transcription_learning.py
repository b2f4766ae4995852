"""A learning test for frame-level transcription: FT1 on synthetic polyphonic audio of known notes.

The audio is a MusicNet-format set of harmonic tones: a drone on one key sounding most of the
time, and a second voice stepping through four other keys. The trained model's frame F1 must be
far above the all-silent prediction (0) and above the frame-wise majority baseline (each key
predicted on wherever it sounds in most training frames: the drone alone), by margins that hold
on 2 cores.
"""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf

from lightning_w2v.commands import main

RATE = 44_100
DRONE, VOICE = 43, (52, 57, 60, 64)  # G2, and E3 A3 C4 E4
HEADER = ["start_time", "end_time", "instrument", "note", "start_beat", "end_beat", "note_value"]


def tone(midi: int, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    f = 440.0 * 2 ** ((midi - 69) / 12)
    wave = sum(np.sin(2 * math.pi * k * f * t) / k for k in range(1, 5))
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
    return (wave * fade).astype(np.float32)


def write_tone_musicnet(root, seconds: float = 12.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    base = root / "musicnet"
    for split, ids in (("train", range(1000, 1008)), ("test", (1759, 1819))):
        (base / f"{split}_data").mkdir(parents=True)
        (base / f"{split}_labels").mkdir(parents=True)
        for rec in ids:
            mix = np.zeros(int(seconds * RATE), dtype=np.float32)
            rows = []
            drone_off = float(rng.uniform(0.6, 0.8)) * seconds  # the drone sounds ~70% of the time
            mix[:int(drone_off * RATE)] += 0.5 * tone(DRONE, drone_off)
            rows.append([0, int(drone_off * RATE), 43, DRONE, 0, 1, "Whole"])
            start = 0.0
            while start < seconds - 0.6:
                length = float(rng.uniform(0.3, 0.6))
                key = int(rng.choice(VOICE))
                i = int(start * RATE)
                mix[i:i + int(length * RATE)] += 0.5 * tone(key, length)
                rows.append([i, i + int(length * RATE), 41, key, 0, 1, "Quarter"])
                start += length + float(rng.uniform(0.05, 0.3))
            sf.write(base / f"{split}_data" / f"{rec}.wav", 0.8 * mix / np.abs(mix).max(), RATE, subtype="PCM_16")
            with open(base / f"{split}_labels" / f"{rec}.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(HEADER)
                writer.writerows(rows)


def majority_f1(run) -> float:
    """Frame F1 of predicting, on every test frame, the keys that sound in most training frames: the drone."""
    tp = predicted = actual = 0
    for file in sorted((run / "test_predictions").glob("*.npz")):
        with np.load(file) as saved:
            targets = saved["targets"][:, :88] > 0
        guess = np.zeros_like(targets)
        guess[:, DRONE - 21] = True
        tp += (guess & targets).sum()
        predicted += guess.sum()
        actual += targets.sum()
    precision, recall = tp / predicted, tp / actual
    return 2 * precision * recall / (precision + recall)


@pytest.mark.slow
def test_ft1_learns_polyphonic_frames_far_above_silence_and_the_majority(tmp_path):
    write_tone_musicnet(tmp_path)
    run = tmp_path / "run"
    code = main(["fit", "--config", "finetune/demo_transcription", "--config", "finetune/policy/ft1",
                 "--model.init_args.encoder.source=random", "--model.init_args.encoder.preset=tiny",
                 "--model.init_args.encoder_lr=2e-3", "--model.init_args.head_lr=1e-2",
                 "--data.class_path=lightning_w2v.data.MusicNetTranscriptionDataModule",
                 f"--data.init_args.root={tmp_path}", "--data.init_args.window_seconds=2.0",
                 "--data.init_args.val_recordings=1", "--trainer.max_epochs=12",
                 f"--trainer.default_root_dir={run}", "--trainer.enable_progress_bar=false"])
    assert code == 0
    f1 = json.loads((run / "test_metrics.json").read_text())["metrics"]["test/frame_f1"]
    baseline = majority_f1(run)
    print(f"frame F1 {f1:.3f}, majority baseline {baseline:.3f}")
    assert 0.4 < baseline < 0.75  # the drone alone: a real baseline, not a trivial one
    assert f1 > baseline + 0.1, (f1, baseline)
