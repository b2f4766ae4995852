"""Segments over recordings, and a batch sampler that sizes batches by seconds of audio.

A batch holds crops of one length: the shortest crop in it. The sampler therefore sorts
segments by (cropped) length, longest first, with ties broken at random, packs them
greedily while ``batch_size * crop_len <= max_batch_seconds * sample_rate``, then shuffles
the order of the batches (fairseq's ``batch_by_size``). Because only ties are shuffled,
every epoch has the same number of batches, which Lightning and DDP both rely on.

DDP: each rank takes ``batches[rank::world_size]`` of the same global list. Without
``drop_last`` the list is padded with its first batches so every rank gets the same count
(the union then covers everything; only the padding repeats). With ``drop_last`` the
remainder is dropped and the shards are disjoint.

Resuming: ``state_dict()`` holds the epoch and the number of batches of that epoch already
consumed; after ``load_state_dict`` the next iteration skips them and yields exactly the
remaining batches of the interrupted epoch. The count is of batches *yielded*; a
DataLoader with workers prefetches a few, which is why ``MusicNetDataModule`` stores the
trainer's own count of processed batches instead.
"""
from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from ..errors import ConfigError
from ..vocabulary import SAMPLE_RATE

log = logging.getLogger(__name__)


def make_segments(
    num_samples: Sequence[int], segment_samples: int, hop_samples: int, min_samples: int = 0
) -> np.ndarray:
    """Cut recordings into windows; returns int64 ``(N, 3)`` rows ``(recording, start, length)``.

    Windows of ``segment_samples`` start every ``hop_samples``; if the last one stops short
    of the end, one more window is aligned to the end so no audio is left out. A recording
    no longer than a window gives one segment of its own length. Recordings shorter than
    ``min_samples`` give none.
    """
    if segment_samples <= 0 or hop_samples <= 0:
        raise ConfigError("data.init_args.segment_seconds and hop_seconds must be positive")
    rows: list[np.ndarray] = []
    for rec, n in enumerate(num_samples):
        n = int(n)
        if n < max(min_samples, 1):
            continue
        if n <= segment_samples:
            starts, length = np.zeros(1, dtype=np.int64), n
        else:
            starts = np.arange(0, n - segment_samples + 1, hop_samples, dtype=np.int64)
            if starts[-1] + segment_samples < n:
                starts = np.append(starts, n - segment_samples)
            length = segment_samples
        rows.append(np.stack([np.full_like(starts, rec), starts, np.full_like(starts, length)], 1))
    return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


def _dist_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class SecondsBatchSampler(Sampler[list[int]]):
    """Yields lists of item indices whose cropped audio fits ``max_batch_seconds``.

    Args:
        lengths: length in samples of each item (segment).
        max_batch_seconds: budget per batch: ``len(batch) * crop_len <= this * sample_rate``
            (a single item longer than the budget still forms a batch of one).
        sample_rate: samples per second of ``lengths``.
        max_sample_size: crops are at most this long; ``None`` means items are not cropped.
        shuffle: random order (deterministic from ``(seed, epoch)``); ``False`` gives a fixed
            longest-first order, for validation.
        seed: base seed.
        rank, world_size: this process's shard; default from ``torch.distributed`` when it is
            initialised at iteration time, else ``(0, 1)``.
        drop_last: drop the batches that do not divide evenly among ranks instead of padding.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_batch_seconds: float,
        sample_rate: int = SAMPLE_RATE,
        max_sample_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        if max_sample_size is not None:
            lengths = np.minimum(lengths, max_sample_size)
        self.crop_lengths = lengths  # (N,) cost of each item once cropped
        self.max_batch_samples = int(max_batch_seconds * sample_rate)
        self.sample_rate = sample_rate
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self._rank, self._world_size = rank, world_size
        self.epoch = 0
        self._consumed = 0  # batches of self.epoch already yielded
        self._cache: tuple[tuple[int, int, int], list[list[int]]] | None = None

    # -- Lightning calls set_epoch on ``batch_sampler.sampler`` (not on the batch sampler), so
    #    pointing it at ourselves is what makes the epoch advance under a Trainer.
    @property
    def sampler(self) -> "SecondsBatchSampler":
        return self

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._consumed = epoch, 0

    def rank_world(self) -> tuple[int, int]:
        rank, world = _dist_rank_world()
        rank = rank if self._rank is None else self._rank
        world = world if self._world_size is None else self._world_size
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in [0, {world})")
        return rank, world

    def global_batches(self, epoch: int) -> list[list[int]]:
        """All batches of an epoch, before sharding among ranks."""
        rng = np.random.default_rng([self.seed, epoch])
        lengths = self.crop_lengths
        order = rng.permutation(len(lengths)) if self.shuffle else np.arange(len(lengths))
        order = order[np.argsort(-lengths[order], kind="stable")]  # longest first, ties random
        batches: list[list[int]] = []
        cur: list[int] = []
        for i, n in zip(order.tolist(), lengths[order].tolist()):
            if cur and (len(cur) + 1) * n > self.max_batch_samples:  # n is the new shortest
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def rank_batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches of an epoch (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        rank, world = self.rank_world()
        key = (epoch, rank, world)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        batches = self.global_batches(epoch)
        n = len(batches)
        if world > 1 and n:
            total = (n // world) * world if self.drop_last else -(-n // world) * world
            batches = [batches[i % n] for i in range(total)]
        mine = batches[rank::world]
        self._cache = (key, mine)
        return mine

    def __len__(self) -> int:
        return len(self.rank_batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches()
        for i in range(self._consumed, len(batches)):
            self._consumed = i + 1
            yield batches[i]
        self._consumed = 0  # epoch finished: a new iteration without set_epoch starts over

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_consumed": self._consumed, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("seed", self.seed) != self.seed:
            log.warning("resuming with seed %s, the checkpoint used %s", self.seed, state["seed"])
        self.epoch = int(state["epoch"])
        self._consumed = int(state["batches_consumed"])
