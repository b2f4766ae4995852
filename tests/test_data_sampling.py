"""Segmentation and the seconds-budget batch sampler (determinism, DDP shards, resume)."""
from __future__ import annotations

import numpy as np
import pytest

from lightning_w2v.data.sampling import SecondsBatchSampler, make_segments

SR = 16000


def test_segments_20s_windows_10s_hop():
    seg, hop = 20 * SR, 10 * SR
    rows = make_segments([45 * SR, 20 * SR, 7 * SR, 1000], seg, hop, min_samples=32000)
    rec0 = rows[rows[:, 0] == 0]
    # 0-20, 10-30, 20-40, then one aligned to the end (25-45) so the tail is used
    assert rec0[:, 1].tolist() == [0, 10 * SR, 20 * SR, 25 * SR]
    assert set(rec0[:, 2].tolist()) == {seg}
    assert rows[rows[:, 0] == 1].tolist() == [[1, 0, seg]]  # exactly one window
    assert rows[rows[:, 0] == 2].tolist() == [[2, 0, 7 * SR]]  # shorter: its own length
    assert not (rows[:, 0] == 3).any()  # below min_samples: dropped
    assert rows.dtype == np.int64 and rows.shape[1] == 3


def test_segments_exact_multiple_has_no_extra_window():
    rows = make_segments([40 * SR], 20 * SR, 10 * SR)
    assert rows[:, 1].tolist() == [0, 10 * SR, 20 * SR]


def _lengths(n=200, seed=0):
    rng = np.random.default_rng(seed)
    full = np.full(n, 20 * SR)
    full[rng.choice(n, n // 5, replace=False)] = rng.integers(2 * SR, 20 * SR, n // 5)
    return full


def test_batches_respect_the_seconds_budget_and_cover_every_item():
    lengths = _lengths()
    s = SecondsBatchSampler(lengths, max_batch_seconds=87.5, max_sample_size=250000, seed=1)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    budget = int(87.5 * SR)
    for b in batches:
        crop = min(250000, lengths[b].min())
        assert len(b) * crop <= budget or len(b) == 1
    # full 20 s segments are cropped to 250k samples: 5 per batch (1.25M <= 1.4M)
    assert max(len(b) for b in batches) >= 5
    assert len(s) == len(batches)


def test_order_is_deterministic_from_seed_and_epoch():
    lengths = _lengths()
    a = SecondsBatchSampler(lengths, 87.5, max_sample_size=250000, seed=3)
    b = SecondsBatchSampler(lengths, 87.5, max_sample_size=250000, seed=3)
    assert list(a) == list(b)
    e0 = list(a)
    a.set_epoch(1)
    e1 = list(a)
    assert e0 != e1 and len(e0) == len(e1)  # new order, same number of batches
    c = SecondsBatchSampler(lengths, 87.5, max_sample_size=250000, seed=4)
    assert list(c) != e0


def test_unshuffled_order_is_fixed_and_longest_first():
    lengths = np.array([5, 9, 9, 3, 7]) * SR
    s = SecondsBatchSampler(lengths, max_batch_seconds=18, shuffle=False)  # 3 x 3 s fit in 18 s
    assert list(s) == [[1, 2], [4, 0, 3]]
    s.set_epoch(5)
    assert list(s) == [[1, 2], [4, 0, 3]]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ddp_shards_are_disjoint_and_cover_everything(world):
    lengths = _lengths(101)
    kw = dict(lengths=lengths, max_batch_seconds=87.5, max_sample_size=250000, seed=0)
    n_global = len(SecondsBatchSampler(**kw).global_batches(0))
    # drop_last: disjoint shards of equal size
    shards = [list(SecondsBatchSampler(**kw, rank=r, world_size=world, drop_last=True))
              for r in range(world)]  # fmt: skip
    seen = [i for sh in shards for b in sh for i in b]
    assert len(seen) == len(set(seen))
    assert len({len(sh) for sh in shards}) == 1 and len(shards[0]) == n_global // world
    # default (padding): equal sizes, the union covers every item, only padding repeats
    shards = [list(SecondsBatchSampler(**kw, rank=r, world_size=world)) for r in range(world)]
    assert len({len(sh) for sh in shards}) == 1
    seen = [tuple(b) for sh in shards for b in sh]
    assert {i for b in seen for i in b} == set(range(len(lengths)))
    assert len(seen) - len(set(seen)) == (-n_global) % world


def test_state_dict_resume_gives_the_same_remaining_batches():
    lengths = _lengths()
    kw = dict(lengths=lengths, max_batch_seconds=87.5, max_sample_size=250000, seed=7)
    ref = SecondsBatchSampler(**kw)
    ref.set_epoch(2)
    expected = list(ref)

    run = SecondsBatchSampler(**kw)
    run.set_epoch(2)
    it = iter(run)
    consumed = [next(it) for _ in range(5)]
    state = run.state_dict()
    assert state == {"epoch": 2, "batches_consumed": 5, "seed": 7}

    resumed = SecondsBatchSampler(**kw)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # what Lightning does at epoch start: same epoch keeps the position
    rest = list(resumed)
    assert consumed + rest == expected
    assert resumed.state_dict()["batches_consumed"] == 0  # the epoch finished
    resumed.set_epoch(3)
    assert len(list(resumed)) == len(expected)  # the next epoch is complete again


def test_set_epoch_to_a_new_epoch_resets_the_position():
    s = SecondsBatchSampler(_lengths(), 87.5, max_sample_size=250000)
    s.load_state_dict({"epoch": 0, "batches_consumed": 4})
    s.set_epoch(1)
    assert len(list(s)) == len(s)


def test_lightning_finds_set_epoch_through_batch_sampler_sampler():
    from lightning_fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    s = SecondsBatchSampler(_lengths(), 87.5, max_sample_size=250000)
    dl = DataLoader(range(200), batch_sampler=s)
    _set_sampler_epoch(dl, 4)
    assert s.epoch == 4
