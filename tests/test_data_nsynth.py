"""NSynthDataModule: labels, errors named by file and key, subsets, few-shot, batches."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from lightning_w2v.data.nsynth import FAMILIES, NSynthDataModule, NSynthError, load_nsynth_split

SOURCES = ("acoustic", "electronic", "synthetic")


def note(family: int, pitch: int, velocity: int = 100, inst: int = 1, source: int = 0) -> dict:
    inst_str = f"{FAMILIES[family]}_{SOURCES[source]}_{inst:03d}"
    return {
        "note": 1000 * family + pitch, "note_str": f"{inst_str}-{pitch:03d}-{velocity:03d}",
        "instrument": 100 * family + inst, "instrument_str": inst_str, "pitch": pitch,
        "velocity": velocity, "sample_rate": 16000, "instrument_source": source,
        "instrument_source_str": SOURCES[source], "instrument_family": family,
        "instrument_family_str": FAMILIES[family], "qualities": [0] * 10, "qualities_str": [],
    }  # fmt: skip


def write_split(root, split, notes, sr=16000, frames=64000, channels=1):
    d = root / f"nsynth-{split}"
    (d / "audio").mkdir(parents=True, exist_ok=True)
    for n in notes:
        x = np.zeros((frames, channels), dtype=np.float32)
        x[:100] = 0.01 * (n["pitch"] % 7)
        sf.write(d / "audio" / f"{n['note_str']}.wav", x, sr, subtype="PCM_16")
    (d / "examples.json").write_text(json.dumps({n["note_str"]: n for n in notes}))
    return d


def grid(families=(0, 3, 6), pitches=(40, 50, 60), instruments=(1, 2)):
    return [note(f, p, inst=i) for f in families for p in pitches for i in instruments]


@pytest.fixture
def root(tmp_path):
    write_split(tmp_path, "train", grid())
    write_split(tmp_path, "valid", grid(instruments=(3,)))
    write_split(tmp_path, "test", grid(instruments=(4,)))
    return tmp_path


def dm(root, **kw):
    return NSynthDataModule(str(root), num_workers=0, **kw)


def test_pitch_edges_map_to_first_and_last_class(tmp_path):
    write_split(tmp_path, "train", [note(0, 9), note(0, 120), note(0, 60)])
    m = dm(tmp_path)
    ds = m.load_split("train")
    labels = {r["pitch"]: int(y) for r, y in zip(ds.records, ds.labels)}
    assert labels == {9: 0, 120: 111, 60: 51}
    assert m.num_classes == 112 and len(m.class_names) == 112
    assert m.class_names[0] == "A-1" and m.class_names[60 - 9] == "C4" and m.class_names[-1] == "C9"


@pytest.mark.parametrize("pitch", [8, 121])
def test_out_of_range_pitch_names_note_and_file(tmp_path, pitch):
    write_split(tmp_path, "train", [note(0, 60), note(2, pitch)])
    with pytest.raises(NSynthError) as e:
        dm(tmp_path).load_split("train")
    msg = str(e.value)
    assert f"flute_acoustic_001-{pitch:03d}-100" in msg and "nsynth-train/examples.json" in msg
    assert "drop_out_of_range" in msg


def test_out_of_range_pitch_can_be_dropped_and_counted(tmp_path, caplog):
    write_split(tmp_path, "train", [note(0, 60), note(2, 5), note(2, 127)])
    m = dm(tmp_path, drop_out_of_range=True)
    with caplog.at_level(logging.WARNING):
        ds = m.load_split("train")
    assert len(ds) == 1 and m.num_dropped == {"train": 2}
    assert "dropped 2 notes" in caplog.text


def test_instrument_task(root, tmp_path):
    m = dm(root, task="instrument")
    m.setup("fit")
    assert m.num_classes == 11 and m.class_names[9] == "synth_lead"
    assert sorted(set(m.datasets["train"].labels.tolist())) == [0, 3, 6]
    write_split(tmp_path / "bad", "train", [note(0, 60) | {"instrument_family": 11}])
    with pytest.raises(NSynthError, match="instrument_family=11"):
        dm(tmp_path / "bad", task="instrument").load_split("train")


def test_batch_format(root):
    m = dm(root, batch_size=4)
    m.setup("fit")
    b = next(iter(m.train_dataloader()))
    assert set(b) == {"waveforms", "labels", "pitch", "family", "index"}
    assert b["waveforms"].shape == (4, 64000) and b["waveforms"].dtype == torch.float32
    for k in ("labels", "pitch", "family", "index"):
        assert b[k].shape == (4,) and b[k].dtype == torch.long
    assert torch.equal(b["labels"], b["pitch"] - 9)
    assert len(list(m.val_dataloader())) == 3 and len(m.datasets) == 2
    m.setup("test")
    assert sum(len(x["labels"]) for x in m.test_dataloader()) == 9


def test_missing_wav_is_named_with_its_key(root):
    victim = root / "nsynth-valid" / "audio" / "guitar_acoustic_003-050-100.wav"
    victim.unlink()
    with pytest.raises(NSynthError) as e:
        dm(root).setup("fit")
    assert str(victim) in str(e.value) and "'guitar_acoustic_003-050-100'" in str(e.value)
    assert "not found" in str(e.value)


def test_a_missing_wav_is_named_with_header_checks_off(root):
    """validate_audio=none still checks that every file is there, also on a first setup (no index yet)."""
    victim = root / "nsynth-train" / "audio" / "guitar_acoustic_001-040-100.wav"
    victim.unlink()
    with pytest.raises(NSynthError, match="not found"):
        dm(root, validate_audio="none").load_split("train")


def test_wrong_sample_rate_channels_and_length_are_named(tmp_path):
    notes = [note(0, 40), note(0, 41), note(0, 42)]
    write_split(tmp_path, "train", notes[:1], sr=22050)
    write_split(tmp_path, "train", notes[1:2], channels=2)
    write_split(tmp_path, "train", notes[2:], frames=32000)
    js = tmp_path / "nsynth-train" / "examples.json"
    js.write_text(json.dumps({n["note_str"]: n for n in notes}))
    with pytest.raises(NSynthError) as e:
        dm(tmp_path).load_split("train")
    msg = str(e.value)
    assert "3 bad audio file(s)" in msg
    assert "bass_acoustic_001-040-100.wav" in msg
    assert "sample rate expected 16000, found 22050" in msg
    assert "bass_acoustic_001-041-100.wav" in msg and "channels expected 1, found 2" in msg
    assert "bass_acoustic_001-042-100.wav" in msg and "frames expected 64000, found 32000" in msg
    dm(tmp_path, validate_audio="none").load_split("train")  # checks can be switched off


def test_malformed_json_is_named(root):
    js = root / "nsynth-valid" / "examples.json"
    js.write_text(js.read_text()[:-10])
    with pytest.raises(NSynthError, match=r"nsynth-valid/examples\.json: malformed JSON"):
        dm(root).setup("validate")


def test_missing_key_is_named(tmp_path):
    bad = note(0, 60)
    del bad["pitch"]
    write_split(tmp_path, "train", [note(0, 61)])
    (tmp_path / "nsynth-train" / "examples.json").write_text(json.dumps({bad["note_str"]: bad}))
    lacks = r"examples\.json: note 'bass_acoustic_001-060-100' lacks key\(s\) \['pitch'\]"
    with pytest.raises(NSynthError, match=lacks):
        load_nsynth_split(tmp_path, "train")


def test_missing_split_says_how_to_get_it(tmp_path):
    with pytest.raises(NSynthError) as e:
        dm(tmp_path).setup("test")
    msg = str(e.value)
    assert "nsynth-test/examples.json" in msg
    assert "lightning-w2v data download nsynth --root" in msg and "lightning-w2v demo" in msg


def test_load_split_records(root):
    recs = load_nsynth_split(root, "train")
    assert len(recs) == 18 and recs == sorted(recs, key=lambda r: r["note_str"])
    assert recs[0]["path"].endswith(f"nsynth-train/audio/{recs[0]['note_str']}.wav")
    assert recs[0]["split"] == "train" and "qualities_str" in recs[0]


def _selection(root, **kw):
    m = dm(root, task="instrument", **kw)
    m.setup("fit")
    return {s: [r["note_str"] for r in d.records] for s, d in m.datasets.items()}, m


def _per_class(m, split):
    return np.bincount(m.datasets[split].labels, minlength=11)[[0, 3, 6]].tolist()


def test_subset_count_per_class_is_deterministic_and_balanced(root):
    a, m = _selection(root, subset=2, seed=1)
    b, _ = _selection(root, subset=2, seed=1)
    c, _ = _selection(root, subset=2, seed=2)
    assert a == b and a != c
    assert _per_class(m, "train") == [2, 2, 2] and _per_class(m, "valid") == [2, 2, 2]


def test_subset_fraction_is_per_class(root):
    sel, m = _selection(root, subset=0.5, seed=0)
    assert _per_class(m, "train") == [3, 3, 3]  # half of 6 in each class
    assert _per_class(m, "valid") == [2, 2, 2]  # round(0.5 * 3) == 2
    with pytest.raises(ValueError):
        _selection(root, subset=1.5)


def test_few_shot_is_class_balanced_train_only_and_seeded(root):
    a, m = _selection(root, few_shot_k=1, seed=0)
    b, _ = _selection(root, few_shot_k=1, seed=0)
    assert a == b
    assert _per_class(m, "train") == [1, 1, 1] and _per_class(m, "valid") == [3, 3, 3]
    picks = {tuple(_selection(root, few_shot_k=1, seed=s)[0]["train"]) for s in range(6)}
    assert len(picks) > 1


def test_bad_file_during_training_fails_fast_or_is_skipped(root):
    victim = sorted((root / "nsynth-train" / "audio").glob("*.wav"))[0]
    victim.write_bytes(victim.read_bytes()[:2000])  # truncated after setup-time checks
    m = dm(root, validate_audio="none", batch_size=64)
    m.setup("fit")
    with pytest.raises(Exception, match=victim.name):
        next(iter(m.train_dataloader()))
    m = dm(root, validate_audio="none", batch_size=64, on_bad_file="skip")
    m.setup("fit")
    b = next(iter(m.train_dataloader()))
    assert len(b["labels"]) == 17 and m.datasets["train"].num_skipped == 1


def test_kept_audio_is_read_once_and_is_the_same_audio(demo_root, monkeypatch):
    from lightning_w2v.data import nsynth

    reads = []
    real_read = nsynth.read_note
    monkeypatch.setattr(nsynth, "read_note", lambda record: reads.append(record["note_str"]) or real_read(record))
    kept = NSynthDataModule(str(demo_root / "nsynth"), task="instrument", num_workers=0, subset=1,
                            keep_audio_in_memory=True)
    plain = NSynthDataModule(str(demo_root / "nsynth"), task="instrument", num_workers=0, subset=1)
    kept.setup("fit")
    plain.setup("fit")
    for _ in range(3):  # three epochs of each
        for loader in (kept.train_dataloader(), plain.train_dataloader()):
            assert sum(len(batch["index"]) for batch in loader) == len(loader.dataset)
    notes = len(kept.datasets["train"])
    assert reads.count(kept.datasets["train"].records[0]["note_str"]) == 1 + 3  # once kept, three times plain
    assert len(reads) == notes + 3 * notes
    for i in range(notes):
        torch.testing.assert_close(kept.datasets["train"][i]["waveform"], plain.datasets["train"][i]["waveform"])


def test_keeping_a_split_too_large_for_memory_is_refused_by_name():
    from lightning_w2v.data.nsynth import check_fits_in_memory
    from lightning_w2v.errors import ConfigError

    with pytest.raises(ConfigError, match="keep_audio_in_memory: NSynth train"):
        check_fits_in_memory(2**60, "NSynth train (289205 notes)")
