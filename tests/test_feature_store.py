"""The disk feature store of clip-level FE: written once and whole, reused by later runs over the same items
with the same encoder (other seeds, heads and tasks), never read when the encoder, the audio or the file
changed, and filled by both ranks under two-process DDP."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from test_resume import subprocess_env

from lightning_w2v.data import ManifestDataModule, NSynthDataModule
from lightning_w2v.encoders import EncoderSpec, load_encoder
from lightning_w2v.runner import run_cli
from lightning_w2v.tasks.feature_store import StoredFeatures, read_whole, short_hash
from lightning_w2v.tasks.heads import masked_mean

REPO = Path(__file__).resolve().parent.parent


def fit_args(manifest: Path, cache: Path, store: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", "--config", "finetune/manifest", "--config", "finetune/policy/fe",
            f"--data.init_args.manifest={manifest}", f"--data.init_args.cache_dir={cache}",
            "--data.init_args.num_workers=0", "--data.init_args.batch_size=16", "--trainer.accelerator=cpu",
            "--trainer.precision=32-true", "--trainer.max_epochs=2", "--trainer.enable_progress_bar=false",
            "--trainer.logger=false", f"--model.init_args.feature_store={store}", f"--trainer.default_root_dir={out}",
            *extra]


def stored_files(store: Path) -> dict[str, int]:
    """Every finished store file (folder/name) and its modification time."""
    return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*.npy")}


def metrics_of(out: Path) -> dict:
    return json.loads((out / "test_metrics.json").read_text())["metrics"]


def test_one_extraction_serves_other_seeds_heads_and_tasks(demo_root, tiny_pretrain_ckpt, tmp_path):
    manifests, cache, store = demo_root / "manifest", tmp_path / "cache", tmp_path / "store"
    encoder = ["--model.init_args.encoder.source=checkpoint", f"--model.init_args.encoder.path={tiny_pretrain_ckpt}"]
    run_cli(fit_args(manifests / "single.csv", cache, store, tmp_path / "a", *encoder))
    first = stored_files(store)
    assert len(first) == 3 and len({Path(name).parent for name in first}) == 1  # train, valid, test; one encoder
    assert not [p for p in store.rglob(".*")], "no part file is left behind"

    # the stored rows are the encoder's mean-pooled last layer of each slice, computed here independently
    data = ManifestDataModule(str(manifests / "single.csv"), cache_dir=str(cache), progress=False)
    data.setup("test")
    test = data.datasets["test"]
    rows = read_whole(store / next(iter(first)).split("/")[0] / f"{short_hash(test.feature_identity())}.npy",
                      len(test))
    model = load_encoder(EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt))).eval()
    with torch.no_grad():
        waves = torch.stack([test[i]["waveform"] for i in range(4)])
        expected = masked_mean(model(waves).last_hidden_state, None)
    np.testing.assert_allclose(rows[:4, 0], expected.numpy(), rtol=1e-4, atol=1e-5)

    # another seed, another head, another task over the same clips (numbers instead of classes): nothing new
    run_cli(fit_args(manifests / "targets.jsonl", cache, store, tmp_path / "b", *encoder, "--seed_everything=1",
                     "--model.init_args.seed=1", "--model.init_args.head=mlp"))
    assert stored_files(store) == first
    assert "test/r2" in metrics_of(tmp_path / "b")


def test_a_changed_encoder_gets_its_own_store(demo_root, tmp_path):
    """Untrained encoders of two seeds have different weights: each its own folder, never the other's rows."""
    manifests, cache, store = demo_root / "manifest", tmp_path / "cache", tmp_path / "store"
    for seed in (0, 1):
        run_cli(fit_args(manifests / "single.csv", cache, store, tmp_path / f"s{seed}", "--trainer.max_epochs=1",
                         "--model.init_args.encoder.source=random", "--model.init_args.encoder.preset=tiny",
                         f"--seed_everything={seed}"))
    folders = {Path(name).parent for name in stored_files(store)}
    assert len(folders) == 2
    descriptions = [json.loads((store / folder / "store.json").read_text()) for folder in folders]
    assert descriptions[0]["encoder"] != descriptions[1]["encoder"]  # the weights' hashes differ

    # the same encoder read as a learned mix of every layer: every layer is stored, in a folder of its own
    run_cli(fit_args(manifests / "single.csv", cache, store, tmp_path / "w", "--trainer.max_epochs=1",
                     "--model.init_args.encoder.source=random", "--model.init_args.encoder.preset=tiny",
                     "--seed_everything=0", "--model.init_args.layer=weighted"))
    weighted = {Path(name).parent for name in stored_files(store)} - folders
    assert len(weighted) == 1
    hidden_states = len(load_encoder(EncoderSpec(source="random", preset="tiny")).hidden_sizes)
    for file in (store / weighted.pop()).glob("*.npy"):
        assert np.load(file, mmap_mode="r").shape[1] == hidden_states  # (N, layers, E)


def test_a_broken_store_file_is_rebuilt_not_trusted(demo_root, tmp_path):
    manifests, cache, store = demo_root / "manifest", tmp_path / "cache", tmp_path / "store"
    args = ["--model.init_args.encoder.source=logmel"]
    run_cli(fit_args(manifests / "single.csv", cache, store, tmp_path / "a", *args))
    files = sorted(store.rglob("*.npy"))
    whole = {p: p.read_bytes() for p in files}
    victim = files[0]
    victim.write_bytes(whole[victim][: len(whole[victim]) // 2])  # truncated, e.g. a full disk
    run_cli(fit_args(manifests / "single.csv", cache, store, tmp_path / "b", *args))
    assert victim.read_bytes() == whole[victim]  # extracted again, the same features
    assert metrics_of(tmp_path / "b") == metrics_of(tmp_path / "a")


def test_a_run_that_cannot_fill_its_store_leaves_nothing_behind(demo_root, tmp_path):
    """One training batch of an epoch: the training store stays unfinished, and its part file is removed."""
    manifests, cache, store = demo_root / "manifest", tmp_path / "cache", tmp_path / "store"
    run_cli(fit_args(manifests / "single.csv", cache, store, tmp_path / "a", "--model.init_args.encoder.source=logmel",
                     "--trainer.limit_train_batches=1", "--trainer.max_epochs=1"))
    assert len(stored_files(store)) == 2  # valid and test were filled whole; train was not
    assert not [p for p in store.rglob(".*")], "no part file is left behind"


def test_the_identity_follows_the_audio_files_and_the_slicing(demo_root, tmp_path):
    manifest = demo_root / "manifest" / "single.csv"

    def identities(**kwargs) -> dict[str, str]:
        data = ManifestDataModule(str(manifest), cache_dir=str(tmp_path / "cache"), progress=False, **kwargs)
        data.prepare_data()
        data.setup()
        return {split: dataset.feature_identity() for split, dataset in data.datasets.items()}

    before = identities()
    assert identities() == before  # stable
    assert identities(slice_seconds=2.5)["train"] != before["train"]
    train_file = next(c.path for c in ManifestDataModule(str(manifest)).clips() if c.split == "train")
    stat = train_file.stat()
    os.utime(train_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the file was rewritten
    try:
        after = identities()
    finally:
        os.utime(train_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert after["train"] != before["train"]
    assert after["valid"] == before["valid"] and after["test"] == before["test"]


def test_nsynth_pitch_and_instrument_share_their_notes(demo_root):
    datasets = {}
    for task in ("pitch", "instrument"):
        data = NSynthDataModule(str(demo_root / "nsynth"), task=task, num_workers=0)
        data.setup("test")
        datasets[task] = data.datasets["test"]
    assert datasets["pitch"].feature_identity() == datasets["instrument"].feature_identity()
    assert data.feature_store_root == demo_root / "nsynth" / ".lightning_w2v_features"  # beside the splits


def test_a_store_is_published_only_when_every_item_has_features(tmp_path):
    strategy = pl.strategies.SingleDeviceStrategy(device=torch.device("cpu"))
    path = tmp_path / "enc" / "data.npy"
    features = np.random.default_rng(0).standard_normal((10, 2, 3)).astype(np.float32)
    stored = StoredFeatures(path, 10, strategy)
    assert stored.missing(np.arange(10)).all()
    stored.put(np.arange(6), features[:6])
    np.testing.assert_array_equal(stored.get(np.array([5, 0])), features[[5, 0]])
    stored.finish(strategy, torch.device("cpu"))
    assert not path.exists() and not stored.complete  # 4 items have none yet
    stored.put(np.arange(6, 10), features[6:])
    stored.finish(strategy, torch.device("cpu"))
    assert stored.complete and sorted(p.name for p in path.parent.iterdir()) == ["data.npy"]
    np.testing.assert_array_equal(StoredFeatures(path, 10, strategy).get(np.arange(10)), features)
    assert read_whole(path, 11) is None  # the data set changed size: not trusted


@pytest.mark.slow
def test_two_ranks_fill_one_store_equal_to_one_process(demo_root, tmp_path):
    """Two-process CPU DDP (gloo): each rank extracts its share, rank 0 merges; the files equal one process's."""
    manifests, cache = demo_root / "manifest", tmp_path / "cache"
    args = ["--model.init_args.encoder.source=logmel", "--trainer.max_epochs=1"]
    run_cli(fit_args(manifests / "single.csv", cache, tmp_path / "one", tmp_path / "a", *args))
    ddp = fit_args(manifests / "single.csv", cache, tmp_path / "two", tmp_path / "b", *args,
                   "--trainer.devices=2", "--trainer.strategy=ddp")
    done = subprocess.run([sys.executable, str(REPO / "cli.py"), *ddp], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    one, two = stored_files(tmp_path / "one"), stored_files(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(two) == 3  # the same keys: the same encoder, data and settings
    assert not [p for p in (tmp_path / "two").rglob(".*")], "no part file is left behind"
    for name in one:
        np.testing.assert_allclose(np.load(tmp_path / "two" / name), np.load(tmp_path / "one" / name), atol=1e-5)
