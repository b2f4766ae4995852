"""AudioFolderDataModule: any tree of audio, through MusicNet's cache, segments and sampler."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lightning_w2v.data import AudioFolderDataModule
from lightning_w2v.data.audiofolder import matches, read_manifest, recording_id, scan_audio_files, split_files
from lightning_w2v.data.cache import CacheBuildError
from lightning_w2v.data.musicnet import CachedAudioDataModule, MusicNetDataModule

CONF = Path(__file__).resolve().parent.parent / "conf"

# relative path, sample rate, channels, seconds, format / subtype
TREE = [
    ("piano/a.wav", 44100, 2, 1.20, "WAV", "PCM_16"),
    ("piano/b.flac", 48000, 1, 1.10, "FLAC", "PCM_16"),
    ("piano/op 10/c.wav", 8000, 1, 1.50, "WAV", "PCM_16"),  # a space in a folder name
    ("strings/d.flac", 22050, 2, 1.30, "FLAC", "PCM_24"),
    ("strings/e.WAV", 48000, 2, 1.05, "WAV", "FLOAT"),  # upper-case extension
    ("strings/f.ogg", 22050, 1, 1.25, "OGG", "VORBIS"),
    ("strings/g.mp3", 44100, 2, 1.15, "MP3", "MPEG_LAYER_III"),
    ("strings/drafts/h.wav", 16000, 1, 1.0, "WAV", "PCM_16"),  # excluded by "drafts"
    ("speech/s.flac", 16000, 1, 1.0, "FLAC", "PCM_16"),  # not included
]
INCLUDE = ["piano/*", "strings/*"]
EXCLUDE = ["drafts"]
KEPT = sorted(p for p, *_ in TREE if not p.startswith(("speech/", "strings/drafts/")))
SMALL = dict(segment_seconds=1.0, hop_seconds=0.5, max_sample_size=12000, min_sample_size=8000,
             max_batch_seconds=3.0, val_crop_seconds=0.5, num_workers=0, progress=False)  # fmt: skip


def write_tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for rel, sr, channels, seconds, fmt, subtype in TREE:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        x = np.clip(0.1 * rng.standard_normal((round(seconds * sr), channels)), -1, 1).astype(np.float32)
        sf.write(str(path), x, sr, format=fmt, subtype=subtype)
    (root / "notes.txt").write_text("not audio")
    (root / "piano" / ".hidden.wav").write_bytes(b"")  # hidden files are skipped
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("audiofolder") / "corpus")


def test_patterns():
    assert matches("strings/drafts/h.wav", "drafts") and not matches("strings/d.flac", "drafts")
    assert matches("piano/op 10/c.wav", "piano/*") and matches("piano/a.wav", "piano")
    assert matches("a/b/c.flac", "*.flac") and not matches("a/b/c.wav", "*.flac")
    assert matches("live/2019/x.wav", "live/2019") and not matches("live/2020/x.wav", "live/2019")
    assert matches("x.wav", "**/x.wav") and matches("a/x.wav", "**/x.wav")
    assert matches("a/x.wav", "./a/") and not matches("Piano/a.wav", "piano")  # case-sensitive


def test_scan_honours_include_exclude_extensions_and_hidden_files(tree):
    assert scan_audio_files(tree, INCLUDE, EXCLUDE) == KEPT
    everything = scan_audio_files(tree)
    assert "speech/s.flac" in everything and "strings/drafts/h.wav" in everything
    assert not any(p.endswith((".txt", ".hidden.wav")) for p in everything)
    assert scan_audio_files(tree, "*.flac") == ["piano/b.flac", "speech/s.flac", "strings/d.flac"]
    assert scan_audio_files(tree, extensions=["ogg"]) == ["strings/f.ogg"]


def test_split_is_by_path_hash_and_stable():
    paths = [f"dir{i % 7}/file{i}.wav" for i in range(400)]
    train, val = split_files(paths, 0.1)
    assert sorted(train + val) == sorted(paths) and not set(train) & set(val)
    assert 20 <= len(val) <= 60
    more = paths + [f"new/file{i}.wav" for i in range(100)]
    train2, val2 = split_files(list(reversed(more)), 0.1)
    assert set(val) <= set(val2) and set(train) <= set(train2)  # old files keep their split
    assert split_files(["a.wav", "b.wav"], 0.01)[1] != []  # at least one file held out
    assert split_files(["a.wav"], 0.5) == (["a.wav"], [])
    assert split_files(["a.wav", "b.wav"], 0.0)[1] == []


def test_ids_are_unique_and_file_name_safe():
    ids = {recording_id(p) for p in ["a/b.wav", "a_b.wav", "a/b.flac", "ü n/ï.wav", "../x.wav"]}
    assert len(ids) == 5
    assert all(i.replace("_", "").replace("-", "").replace(".", "").isalnum() for i in ids)


@pytest.fixture(scope="module")
def dm(tree, tmp_path_factory):
    m = AudioFolderDataModule(str(tree), include=INCLUDE, exclude=EXCLUDE, val_fraction=0.3,
                              cache_dir=str(tmp_path_factory.mktemp("cache")), **SMALL)  # fmt: skip
    m.prepare_data()
    m.setup("fit")
    return m


def test_shares_musicnets_machinery(dm):
    assert isinstance(dm, CachedAudioDataModule) and issubclass(MusicNetDataModule, CachedAudioDataModule)
    assert type(dm).train_dataloader is MusicNetDataModule.train_dataloader
    assert type(dm.train_dataloader().dataset).__name__ == "SegmentCrops"


def test_cache_is_16k_mono_for_every_rate_and_format(dm, tree):
    train, val = dm.files()
    assert sorted(train + val) == KEPT and val and train
    index = {e.source: e for e in dm.train_index.entries + dm.val_index.entries}
    for rel, sr, _channels, _seconds, _fmt, _ in TREE:
        if rel not in KEPT:
            continue
        entry = index[str((tree / rel).resolve())]
        frames = sf.info(str(tree / rel)).frames
        assert entry.num_samples == int(np.ceil(frames * 16000 / sr)), rel
        cached = np.load(dm.cache_dir / entry.file)
        assert cached.dtype == np.int16 and cached.ndim == 1


def test_manifest_lists_every_file_with_its_seconds(dm):
    rows = read_manifest(dm.manifest_path)
    assert sorted(r[0] for r in rows) == KEPT
    assert (dm.manifest_path.read_text().splitlines()[0]) == "path\tseconds\tsplit"
    train, val = dm.files()
    seconds = {r[0]: r[1] for r in rows}
    assert {r[0] for r in rows if r[2] == "val"} == set(val)
    for rel, _sr, _c, secs, *_ in TREE:
        if rel in KEPT:
            assert seconds[rel] == pytest.approx(secs, abs=2e-3)
    assert not list(dm.cache_dir.glob("*.partial"))  # written atomically


def test_batches_are_equal_length_crops(dm):
    batches = list(dm.train_dataloader())
    assert sum(len(b["lengths"]) for b in batches) == len(dm.train_segments)
    for b in batches:
        w, n = b["waveforms"], b["lengths"]
        assert w.dtype == torch.float32 and (n == w.shape[1]).all()
        assert w.shape[0] * w.shape[1] <= 3.0 * 16000 and w.shape[1] <= 12000
    val = list(dm.val_dataloader())
    assert val and all(b["waveforms"].shape[1] == 8000 for b in val)


def test_unreadable_files_are_named_and_can_be_excluded(tmp_path):
    root = write_tree(tmp_path / "corpus")
    (root / "strings" / "broken.flac").write_bytes(b"fLaC not really")
    kw = dict(SMALL, include=INCLUDE, exclude=EXCLUDE, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(CacheBuildError, match="broken.flac"):
        AudioFolderDataModule(str(root), **kw).prepare_data()
    m = AudioFolderDataModule(str(root), **{**kw, "exclude": EXCLUDE + ["broken.*"]})
    m.prepare_data()
    m.setup("fit")
    assert len(m.train_index) + len(m.val_index) == len(KEPT)


def test_empty_selection_says_what_was_searched(tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        AudioFolderDataModule(str(tree), include="nothing_here/*", cache_dir=str(tmp_path), **SMALL).prepare_data()


@pytest.mark.slow
def test_cli_fast_dev_run_on_a_mixed_tree(tree, tmp_path):
    from lightning_w2v.runner import run_cli as main

    cache = tmp_path / "cache"
    args = ["fit", "--config", str(CONF / "pretrain" / "audiofolder_demo.yaml"),
            f"--data.init_args.root={tree}", f"--data.init_args.cache_dir={cache}",
            "--data.init_args.include=[piano/*, strings/*]", "--data.init_args.exclude=[drafts]",
            "--data.init_args.val_fraction=0.3", "--data.init_args.segment_seconds=1.0",
            "--data.init_args.hop_seconds=0.5", "--data.init_args.max_sample_size=12000",
            "--data.init_args.min_sample_size=8000", "--data.init_args.max_batch_seconds=3.0",
            "--data.init_args.val_crop_seconds=0.5", "--data.init_args.progress=false",
            "--trainer.fast_dev_run=1", f"--trainer.default_root_dir={tmp_path / 'run'}"]  # fmt: skip
    cli = main(args)
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
    assert isinstance(cli.datamodule, AudioFolderDataModule)
    assert sorted(sum(cli.datamodule.files(), [])) == KEPT
    assert sorted(r[0] for r in read_manifest(cache / "manifest.tsv")) == KEPT
