"""The 16 kHz cache: conversion, idempotence, resumption and bad-file reporting."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import soundfile as sf

from lightning_w2v.data.cache import (
    INDEX_NAME,
    CacheBuildError,
    CacheIndex,
    build_cache,
    open_cache,
)


def _wav(path, seconds=1.0, sr=44100, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.clip(0.1 * rng.standard_normal((n, channels)), -1, 1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, subtype="PCM_16")
    return path


@pytest.fixture
def sources(tmp_path):
    return [
        ("a", _wav(tmp_path / "src" / "a.wav", 1.0, 44100, 2, 0)),
        ("b", _wav(tmp_path / "src" / "b.wav", 0.5, 22050, 1, 1)),
        ("c", _wav(tmp_path / "src" / "c.wav", 2.0, 16000, 1, 2)),
    ]


def test_build_converts_to_16k_mono_int16(tmp_path, sources):
    index = build_cache(sources, tmp_path / "cache", progress=False)
    assert [e.id for e in index.entries] == ["a", "b", "c"]
    assert [e.num_samples for e in index.entries] == [16000, 8000, 32000]
    a = index.load("a")
    assert isinstance(a, np.memmap) and a.dtype == np.int16 and a.shape == (16000,)
    # a 16 kHz 16-bit source round-trips exactly
    src, _ = sf.read(sources[2][1], dtype="int16")
    np.testing.assert_array_equal(index.load("c"), src)
    assert index.summary() == {"recordings": 3, "hours": round(3.5 / 3600, 4)}
    on_disk = json.loads((tmp_path / "cache" / INDEX_NAME).read_text())
    assert on_disk["dtype"] == "int16" and on_disk["sample_rate"] == 16000
    keys = {"id", "source", "source_size", "source_mtime_ns", "num_samples", "file"}
    assert keys <= set(on_disk["entries"][0])


def test_second_build_rewrites_nothing(tmp_path, sources):
    cache = tmp_path / "cache"
    build_cache(sources, cache, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    time.sleep(0.01)
    again = build_cache(sources, cache, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before
    assert [e.num_samples for e in again.entries] == [16000, 8000, 32000]


def test_changed_source_is_redone(tmp_path, sources):
    cache = tmp_path / "cache"
    build_cache(sources, cache, progress=False)
    mtime_a = (cache / "a.npy").stat().st_mtime_ns
    mtime_b = (cache / "b.npy").stat().st_mtime_ns
    _wav(sources[1][1], 1.0, 22050, 1, 5)  # b changes (size and mtime)
    index = build_cache(sources, cache, progress=False)
    assert index["b"].num_samples == 16000
    assert (cache / "b.npy").stat().st_mtime_ns != mtime_b
    assert (cache / "a.npy").stat().st_mtime_ns == mtime_a


def test_moved_sources_keep_their_cache(tmp_path, sources):
    cache = tmp_path / "cache"
    build_cache(sources, cache, progress=False)
    npy_mtimes = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")}
    (tmp_path / "src").rename(tmp_path / "moved")  # like `mv`: size and mtime unchanged
    moved = [(i, tmp_path / "moved" / p.name) for i, p in sources]
    index = build_cache(moved, cache, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")} == npy_mtimes
    assert index["a"].source == str((tmp_path / "moved" / "a.wav").resolve())


def test_resumes_after_interruption_ignoring_stray_temp_file(tmp_path, sources):
    cache = tmp_path / "cache"
    build_cache(sources[:1], cache, progress=False)  # "interrupted" after one recording
    stray = cache / ".b.npy.1234.deadbeef.partial"
    stray.write_bytes(b"\x93NUMPY half written")
    old = cache / ".c.npy.99.cafe.partial"
    old.write_bytes(b"junk")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    mtime_a = (cache / "a.npy").stat().st_mtime_ns
    index = build_cache(sources, cache, progress=False)
    assert [e.id for e in index.entries] == ["a", "b", "c"]
    assert (cache / "a.npy").stat().st_mtime_ns == mtime_a  # not redone
    assert index.load("b").shape == (8000,)  # the stray temp file did not count as done
    assert not old.exists()  # stale temp files are cleaned up


def test_subset_build_keeps_other_entries(tmp_path, sources):
    cache = tmp_path / "cache"
    build_cache(sources, cache, progress=False)
    sub = build_cache(sources[:1], cache, progress=False)
    assert [e.id for e in sub.entries] == ["a"]
    assert {e.id for e in CacheIndex.read(cache).entries} == {"a", "b", "c"}
    assert [e.id for e in open_cache(sources, cache).entries] == ["a", "b", "c"]


def test_bad_sources_are_all_named_and_leave_no_entry(tmp_path, sources):
    full = sources[0][1].read_bytes()
    cut = tmp_path / "src" / "cut.wav"
    cut.write_bytes(full[: len(full) // 3])
    junk = tmp_path / "src" / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    cache = tmp_path / "cache"
    with pytest.raises(CacheBuildError) as e:
        build_cache(sources + [("cut", cut), ("junk", junk)], cache, progress=False)
    msg = str(e.value)
    assert "2 audio file(s)" in msg and "cut.wav" in msg and "truncated" in msg
    assert "junk.wav" in msg
    assert len(e.value.errors) == 2
    # reported before any conversion: nothing half-written, no entry for the bad files
    assert not (cache / "cut.npy").exists() and not (cache / "junk.npy").exists()
    assert not list(cache.glob("*.partial")) and not list(cache.glob(".*.partial"))
    assert {e.id for e in CacheIndex.read(cache).entries} <= {"a", "b", "c"}


def test_open_cache_names_missing_or_stale(tmp_path, sources):
    cache = tmp_path / "cache"
    stale = r"missing or stale for 3 recording\(s\) \(a, b, c\).*prepare_data"
    with pytest.raises(RuntimeError, match=stale):
        open_cache(sources, cache)
    build_cache(sources, cache, progress=False)
    _wav(sources[0][1], 3.0, 44100, 2, 9)
    with pytest.raises(RuntimeError, match=r"\(a\)"):
        open_cache(sources, cache)


def test_unsafe_or_duplicate_ids_rejected(tmp_path, sources):
    with pytest.raises(ValueError):
        build_cache([("../x", sources[0][1])], tmp_path / "cache", progress=False)
    with pytest.raises(ValueError):
        twice = [("a", sources[0][1]), ("a", sources[1][1])]
        build_cache(twice, tmp_path / "cache", progress=False)
