"""NSynth's notes as columns, and the validated index beside the data: used while nothing changed, a changed
note file checked again, a changed examples.json parsed again, the records the same as parsing gives."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import soundfile as sf
from test_data_nsynth import dm, grid, write_split

from lightning_w2v.data.note_table import INDEX_NAME
from lightning_w2v.data.nsynth import NSynthError, load_nsynth_split, note_table
from lightning_w2v.workflows.bench_nsynth_index import _measure, write_full_size_layout


@pytest.fixture
def root(tmp_path):
    for split in ("train", "valid", "test"):
        write_split(tmp_path, split, grid())
    return tmp_path


def test_the_table_gives_the_records_parsing_gives(root):
    table, _, fresh = note_table(root, "train")
    assert fresh
    parsed = load_nsynth_split(root, "train")
    keys = ("note_str", "pitch", "velocity", "instrument", "instrument_family", "instrument_source", "path", "split")
    assert [{k: r[k] for k in keys} for r in table] == [{k: r[k] for k in keys} for r in parsed]
    assert len(pickle.dumps(table)) < 200 * len(table)  # arrays, not dicts: what a worker receives


def test_the_second_setup_reads_the_index_and_checks_no_header(root, monkeypatch):
    first = dm(root).load_split("train")
    assert (root / "nsynth-train" / INDEX_NAME).is_file()
    assert note_table(root, "train")[2] is False  # from the index, not examples.json
    import lightning_w2v.data.nsynth as nsynth

    checked = []
    monkeypatch.setattr(nsynth, "check_header", lambda path, *a: checked.append(path))
    second = dm(root).load_split("train")
    assert checked == []  # nothing changed: no header is read again
    assert [r["note_str"] for r in second.records] == [r["note_str"] for r in first.records]
    np.testing.assert_array_equal(second.labels, first.labels)


def test_a_note_file_changed_since_the_index_is_checked_again(root):
    dm(root).load_split("train")
    victim = next((root / "nsynth-train" / "audio").iterdir())
    stat = victim.stat()
    sf.write(victim, np.zeros(64000, np.float32), 22050, subtype="PCM_16")  # same size, wrong rate
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(NSynthError, match=victim.stem):
        dm(root).load_split("train")


def test_a_changed_examples_json_is_parsed_again(root):
    dm(root).load_split("train")
    js = root / "nsynth-train" / "examples.json"
    notes = json.loads(js.read_text())
    dropped = sorted(notes)[0]
    del notes[dropped]
    js.write_text(json.dumps(notes))
    table, _, fresh = note_table(root, "train")
    assert fresh and dropped not in [r["note_str"] for r in table]


def test_a_broken_index_is_rebuilt_not_trusted(root):
    dm(root).load_split("train")
    index = root / "nsynth-train" / INDEX_NAME
    index.write_bytes(index.read_bytes()[:100])
    assert note_table(root, "train")[2] is True
    assert len(dm(root).load_split("train")) == len(grid())


def test_the_full_size_layout_writer_and_measurement_at_small_scale(tmp_path):
    write_full_size_layout(tmp_path, counts={"train": 120, "valid": 20, "test": 20})
    wav = next((tmp_path / "nsynth-train" / "audio").iterdir())
    info = sf.info(wav)
    assert (info.samplerate, info.frames, info.channels) == (16000, 64000, 1)
    cold = _measure(str(tmp_path), workers=0, batches=0)
    indexed = _measure(str(tmp_path), workers=2, batches=3)
    assert cold["train_notes"] == indexed["train_notes"] == 120
    assert indexed["workers"] == 2 and len(indexed["worker_uss_last_mib"]) == 2
