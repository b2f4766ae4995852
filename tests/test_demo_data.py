"""Synthetic demo data: exact formats, labelled synthetic, readable, learnable, seeded."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from lightning_w2v.data import MusicNetDataModule, NSynthDataModule, load_nsynth_split
from lightning_w2v.data.demo import (
    LABEL_HEADER,
    METADATA_HEADER,
    MUSICNET_TEST_IDS,
    write_demo_musicnet,
    write_demo_nsynth,
)
from lightning_w2v.data.nsynth import FAMILIES, QUALITIES

NSYNTH_KEYS = {"note", "note_str", "instrument", "instrument_str", "pitch", "velocity",
               "sample_rate", "instrument_source", "instrument_source_str", "instrument_family",
               "instrument_family_str", "qualities", "qualities_str"}  # fmt: skip


@pytest.fixture(scope="module")
def nsynth(demo_root):
    return demo_root / "nsynth"  # the session's demo set (conftest): default sizes, seed 0


@pytest.fixture(scope="module")
def musicnet(demo_root):
    return demo_root / "musicnet"


def test_roots_say_synthetic(nsynth, musicnet):
    for root in (nsynth, musicnet):
        assert "SYNTHETIC" in (root / "README.txt").read_text()


def test_nsynth_json_has_every_real_field(nsynth):
    sizes = {}
    for split in ("train", "valid", "test"):
        raw = json.loads((nsynth / f"nsynth-{split}" / "examples.json").read_text())
        sizes[split] = len(raw)
        for key, ex in raw.items():
            assert set(ex) == NSYNTH_KEYS and key == ex["note_str"]
            assert key == f"{ex['instrument_str']}-{ex['pitch']:03d}-{ex['velocity']:03d}"
            prefix = f"{ex['instrument_family_str']}_{ex['instrument_source_str']}_"
            assert ex["instrument_str"].startswith(prefix)
            assert FAMILIES[ex["instrument_family"]] == ex["instrument_family_str"]
            assert ex["sample_rate"] == 16000 and ex["velocity"] in (25, 50, 75, 100, 127)
            assert 36 <= ex["pitch"] <= 84
            assert len(ex["qualities"]) == 10
            assert ex["qualities_str"] == [q for q, on in zip(QUALITIES, ex["qualities"]) if on]
    assert 400 <= sizes["train"] <= 700
    assert 150 <= sizes["valid"] <= 250 and 150 <= sizes["test"] <= 250
    ids = [r["note"] for s in ("train", "valid", "test") for r in load_nsynth_split(nsynth, s)]
    assert len(ids) == len(set(ids))


def test_nsynth_splits_like_the_real_set(nsynth):
    recs = {s: load_nsynth_split(nsynth, s) for s in ("train", "valid", "test")}
    insts = {s: {r["instrument_str"] for r in v} for s, v in recs.items()}
    assert not (insts["train"] & insts["valid"]) and not (insts["train"] & insts["test"])
    assert not (insts["valid"] & insts["test"])
    fams = {s: {r["instrument_family_str"] for r in v} for s, v in recs.items()}
    assert fams["train"] == set(FAMILIES)
    assert fams["valid"] == fams["test"] == set(FAMILIES) - {"synth_lead"}
    info = sf.info(recs["test"][0]["path"])
    fmt = (info.samplerate, info.channels, info.frames, info.subtype)
    assert fmt == (16000, 1, 64000, "PCM_16")


@pytest.mark.parametrize("task, classes", [("pitch", 112), ("instrument", 11)])
def test_nsynth_datamodule_reads_demo(nsynth, task, classes):
    m = NSynthDataModule(str(nsynth), task=task, batch_size=8, num_workers=0)
    m.setup()  # validates every header
    assert m.num_classes == classes and set(m.datasets) == {"train", "valid", "test"}
    b = next(iter(m.test_dataloader()))
    assert b["waveforms"].shape == (8, 64000) and b["waveforms"].abs().max() > 0.01


def _features(rec):
    wave, _ = sf.read(rec["path"], dtype="float32")
    frames = wave.reshape(40, 1600)  # 0.1 s frames
    env = np.log(np.sqrt((frames**2).mean(1)) + 1e-4)
    spec = np.abs(np.fft.rfft(wave[:16000]))
    centroid = (spec * np.fft.rfftfreq(16000, 1 / 16000)).sum() / spec.sum()
    f0 = 440 * 2 ** ((rec["pitch"] - 69) / 12)
    return np.r_[env - env.max(), np.log(centroid / f0)]  # envelope shape + brightness


def test_families_are_separable_across_instruments(nsynth):
    """Nearest family centroid, fit on train instruments, scores on unseen test instruments."""
    tr, te = load_nsynth_split(nsynth, "train"), load_nsynth_split(nsynth, "test")
    x_tr, x_te = np.stack([_features(r) for r in tr]), np.stack([_features(r) for r in te])
    y_tr = np.array([r["instrument_family"] for r in tr])
    y_te = np.array([r["instrument_family"] for r in te])
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    centroids = np.stack([x_tr[y_tr == c].mean(0) for c in range(11)])
    pred = np.argmin(((x_te[:, None] - centroids[None]) ** 2).sum(-1), 1)
    assert (pred == y_te).mean() > 0.35  # chance is 0.1 (10 test families)


def test_pitch_labels_match_the_audio(nsynth):
    """A harmonic-sum pitch estimate agrees with the label: pitch is in the signal."""
    recs = load_nsynth_split(nsynth, "valid")[::2]
    freqs = np.fft.rfftfreq(32000, 1 / 16000)
    cands = np.arange(30, 91)
    hits = 0
    for r in recs:
        wave, _ = sf.read(r["path"], dtype="float32")
        spec = np.log(np.abs(np.fft.rfft(wave[:32000] * np.hanning(32000))) + 1e-6)
        score = []
        for p in cands:  # log magnitude summed over the first 4 harmonics of each candidate
            bins = np.round(440 * 2 ** ((p - 69) / 12) * np.arange(1, 5) / freqs[1]).astype(int)
            score.append(spec[np.minimum(bins, len(spec) - 1)].sum())
        hits += cands[int(np.argmax(score))] == r["pitch"]
    assert hits / len(recs) > 0.8


def test_demo_is_seeded(tmp_path):
    kw = dict(instruments_per_family=(1, 1, 1), notes_per_instrument=(2, 1, 1))
    a = write_demo_nsynth(tmp_path / "a", seed=5, **kw)
    b = write_demo_nsynth(tmp_path / "b", seed=5, **kw)
    c = write_demo_nsynth(tmp_path / "c", seed=6, **kw)
    ja, jb, jc = ((r / "nsynth-train" / "examples.json").read_text() for r in (a, b, c))
    assert ja == jb and ja != jc
    name = next(iter(json.loads(ja)))
    wav = lambda r: (r / "nsynth-train" / "audio" / f"{name}.wav").read_bytes()  # noqa: E731
    assert wav(a) == wav(b)
    ma = write_demo_musicnet(tmp_path / "ma", seed=1, num_train=1, num_test=1, seconds=(3, 4))
    mb = write_demo_musicnet(tmp_path / "mb", seed=1, num_train=1, num_test=1, seconds=(3, 4))
    wav = lambda r: (r / "musicnet" / "train_data" / "1727.wav").read_bytes()  # noqa: E731
    assert wav(ma) == wav(mb)


def test_musicnet_demo_layout_and_labels(musicnet):
    base = musicnet / "musicnet"
    train = sorted((base / "train_data").glob("*.wav"))
    test = sorted((base / "test_data").glob("*.wav"))
    assert len(train) == 8 and len(test) == 3
    assert {int(p.stem) for p in test} <= set(MUSICNET_TEST_IDS)
    with open(musicnet / "musicnet_metadata.csv") as f:
        meta = list(csv.DictReader(f))
    assert list(meta[0]) == METADATA_HEADER and len(meta) == 11
    seconds = {m["id"]: int(m["seconds"]) for m in meta}
    for wav in train + test:
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_16")
        assert 30 <= info.duration <= 45 and int(info.duration) == seconds[wav.stem]
        split = wav.parent.name.replace("_data", "")
        with open(base / f"{split}_labels" / f"{wav.stem}.csv") as f:
            rows = list(csv.reader(f))
        assert rows[0] == LABEL_HEADER and len(rows) > 20
        starts = np.array([int(r[0]) for r in rows[1:]])
        ends = np.array([int(r[1]) for r in rows[1:]])
        assert (starts < ends).all() and ends.max() <= info.frames  # sample indices at 44.1 kHz
        voices = {int(r[2]) for r in rows[1:]}
        overlap = any(s < e2 and s2 < ends[i] for i, s in enumerate(starts[:50])
                      for s2, e2 in zip(starts[:50], ends[:50]) if s2 != s)  # fmt: skip
        assert overlap or len(voices) == 1  # polyphonic pieces


def test_musicnet_datamodule_reads_demo(musicnet, tmp_path):
    m = MusicNetDataModule(str(musicnet), cache_dir=str(tmp_path / "cache"), num_workers=0,
                           progress=False)  # fmt: skip
    m.prepare_data()
    m.setup("fit")
    s = m.summary()
    assert s["train_recordings"] == 8 and s["val_recordings"] == 3
    assert 0.05 < s["train_hours"] < 0.11
    b = next(iter(m.train_dataloader()))
    assert b["waveforms"].shape == (5, 250000)  # 20 s segments cropped to 250k, 5 per 87.5 s
    assert b["waveforms"].std() > 0.01
