"""Streaming path: webdataset shards written from the 16 kHz cache, read sequentially."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lightning_w2v.data import MusicNetDataModule
from lightning_w2v.data.cache import CacheIndex
from lightning_w2v.data.streaming import ShardCrops, write_shards
from lightning_w2v.runner import run_cli as cli_main

CONF = Path(__file__).resolve().parent.parent / "conf"


def _cache(demo_root, tmp_path) -> Path:
    module = MusicNetDataModule(root=str(demo_root / "musicnet"), cache_dir=str(tmp_path / "cache"),
                                num_workers=0, progress=False)
    module.prepare_data()
    return tmp_path / "cache"


def test_shards_hold_the_cached_audio_in_order(demo_root, tmp_path):
    cache = _cache(demo_root, tmp_path)
    shards = write_shards(cache, tmp_path / "shards", segment_seconds=10.0, samples_per_shard=5)
    assert len(shards) >= 2
    index = CacheIndex.read(cache)
    crops = ShardCrops([str(s) for s in shards], crop_samples=160_000, batch_size=1, shuffle_buffer=1, seed=0,
                       shuffle=False)
    stream = iter(crops)
    for start in (0, 160_000):  # unshuffled: the first recording's first two 10 s segments, from offset 0
        expected = np.asarray(index.load(index.entries[0])[start:start + 160_000], dtype=np.float32) / 32768.0
        torch.testing.assert_close(next(stream)["waveforms"][0], torch.from_numpy(expected), rtol=0, atol=0)


def test_streaming_pretraining_fast_dev_run(demo_root, tmp_path):
    cache = _cache(demo_root, tmp_path)
    shards = write_shards(cache, tmp_path / "shards", segment_seconds=6.0, samples_per_shard=20)
    cli = cli_main(["fit", "--config", str(CONF / "pretrain" / "demo.yaml"), "--trainer.fast_dev_run=2",
                    "--probe.notes=null",
                    "--data=lightning_w2v.data.streaming.StreamingAudioDataModule",
                    f"--data.init_args.train_urls={[str(s) for s in shards]}",
                    f"--data.init_args.val_urls={[str(shards[0])]}",
                    "--data.init_args.crop_samples=32000", "--data.init_args.max_batch_seconds=8",
                    "--data.init_args.num_workers=0", "--data.init_args.pin_memory=false",
                    f"--trainer.default_root_dir={tmp_path / 'run'}"])
    assert cli.trainer.state.finished and cli.trainer.global_step == 2
