"""Streaming pre-training data: webdataset tar shards read sequentially.

Use it when the 16 kHz cache does not fit on a local disk (object storage, a network file
system, thousands of hours). ``write_shards`` packs a built cache (MusicNet or
AudioFolder) into tar shards of fixed-length 16 kHz int16 segments;
``StreamingAudioDataModule`` reads the shards front to back (any URL webdataset opens:
local paths, ``https://``, ``pipe:aws s3 cp ...``), shuffles within a buffer, crops and
batches equal-length crops. Each DDP rank and each DataLoader worker reads its own shards.
With a local cache that fits, prefer the map-style MusicNet / AudioFolder modules: they
give exact resume and exact epochs.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from ..files import claim_folder
from ..files.ownership import only_names
from ..vocabulary import SAMPLE_RATE
from .cache import CacheIndex


def write_shards(cache_dir: str | Path, out_dir: str | Path, segment_seconds: float = 20.0,
                 samples_per_shard: int = 1000) -> list[Path]:
    """Cut every cached recording into ``segment_seconds`` pieces and write them as tar shards.

    Each sample holds ``audio.npy`` (int16, 16 kHz) and ``meta.json`` (recording id, start).
    Returns the shard paths (``shard-000000.tar``, ...).
    """
    import webdataset as wds  # optional: the stream extra

    index = CacheIndex.read(cache_dir)
    out = claim_folder(out_dir, "shards", adopt=only_names(("shard-*.tar",)),
                       hint="write the shards into a new or empty folder")
    length = int(segment_seconds * SAMPLE_RATE)
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=samples_per_shard, verbose=0) as sink:
        for entry in index.entries:
            audio = index.load(entry)  # (n,) int16 memmap
            for start in range(0, max(len(audio) - length // 2, 1), length):
                piece = np.ascontiguousarray(audio[start:start + length])
                buffer = io.BytesIO()
                np.save(buffer, piece)
                sink.write({"__key__": f"{entry.id}_{start:010d}", "audio.npy": buffer.getvalue(),
                            "meta.json": {"recording": entry.id, "start": start}})
    return sorted(out.glob("shard-*.tar"))


class ShardCrops(IterableDataset):
    """Batches of equal-length random crops from a stream of shard samples."""

    def __init__(self, urls: list[str], crop_samples: int, batch_size: int, shuffle_buffer: int, seed: int,
                 shuffle: bool = True) -> None:
        super().__init__()
        self.urls, self.crop_samples, self.batch_size = urls, crop_samples, batch_size
        self.shuffle_buffer, self.seed, self.shuffle = shuffle_buffer, seed, shuffle

    def _samples(self):
        import webdataset as wds  # optional: the stream extra

        dataset = wds.WebDataset(self.urls, shardshuffle=len(self.urls) if self.shuffle else False,
                                 nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker,
                                 empty_check=False, seed=self.seed)
        if self.shuffle:
            dataset = dataset.shuffle(self.shuffle_buffer)
        return dataset.decode().to_tuple("audio.npy")

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng(self.seed + (torch.utils.data.get_worker_info() or _NoWorker).id)
        batch: list[np.ndarray] = []
        for (audio,) in self._samples():
            if len(audio) < self.crop_samples:
                continue  # shorter than a crop: skipped (equal-length batches, no padding)
            start = int(rng.integers(0, len(audio) - self.crop_samples + 1)) if self.shuffle else 0
            batch.append(audio[start:start + self.crop_samples])
            if len(batch) == self.batch_size:
                waves = torch.from_numpy(np.stack(batch).astype(np.float32) / 32768.0)  # (B, T)
                yield {"waveforms": waves, "lengths": torch.full((len(batch),), self.crop_samples)}
                batch = []


class _NoWorker:
    id = 0


class StreamingAudioDataModule(pl.LightningDataModule):
    """Pre-training from webdataset shards written by :func:`write_shards`.

    Args:
        train_urls / val_urls: shard paths or URLs (a list, or one brace pattern such as
            ``/data/shards/shard-{000000..000127}.tar``).
        crop_samples: crop length (all crops in a batch are equal; BASE: 250,000).
        max_batch_seconds: audio per batch; the batch size is ``max_batch_seconds`` / crop.
        shuffle_buffer: samples held for shuffling (memory: buffer x segment length).
    """

    def __init__(self, train_urls: list[str] | str, val_urls: list[str] | str | None = None,
                 crop_samples: int = 250_000, max_batch_seconds: float = 87.5, shuffle_buffer: int = 1000,
                 num_workers: int = 4, pin_memory: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.batch_size = max(1, int(max_batch_seconds * SAMPLE_RATE // crop_samples))

    @staticmethod
    def _urls(urls: list[str] | str) -> list[str]:
        if isinstance(urls, str):
            import braceexpand  # comes with webdataset (the stream extra)

            return list(braceexpand.braceexpand(urls))
        return [str(url) for url in urls]

    def _loader(self, urls: list[str] | str, shuffle: bool) -> DataLoader:
        hp = self.hparams
        dataset = ShardCrops(self._urls(urls), hp.crop_samples, self.batch_size, hp.shuffle_buffer, hp.seed,
                             shuffle=shuffle)
        return DataLoader(dataset, batch_size=None, num_workers=hp.num_workers, pin_memory=hp.pin_memory)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.hparams.train_urls, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if not self.hparams.val_urls:
            return []
        return self._loader(self.hparams.val_urls, shuffle=False)
