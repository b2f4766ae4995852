"""MusicNetDataModule: layouts, cache preparation, batch format, validation, resuming."""
from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest
import pytorch_lightning as pl
import soundfile as sf
import torch

from lightning_w2v.data.cache import CacheBuildError
from lightning_w2v.data.musicnet import MusicNetDataModule, MusicNetNotFoundError, find_musicnet_dir

HEADER = ["start_time", "end_time", "instrument", "note", "start_beat", "end_beat", "note_value"]


def write_musicnet(base, train=(("1727", 3.0), ("1728", 2.2), ("1729", 4.1)),
                   test=(("1759", 2.5), ("1819", 1.5)), sr=44100, channels=2):  # fmt: skip
    """A tiny MusicNet in the real layout under ``base`` (the folder holding train_data)."""
    rng = np.random.default_rng(0)
    for split, recs in (("train", train), ("test", test)):
        (base / f"{split}_data").mkdir(parents=True, exist_ok=True)
        (base / f"{split}_labels").mkdir(parents=True, exist_ok=True)
        for rec_id, seconds in recs:
            x = np.clip(0.1 * rng.standard_normal((int(seconds * sr), channels)), -1, 1)
            wav = base / f"{split}_data" / f"{rec_id}.wav"
            sf.write(wav, x.astype(np.float32), sr, subtype="PCM_16")
            with open(base / f"{split}_labels" / f"{rec_id}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(HEADER)
                w.writerow([0, 22050, 1, 60, 0.0, 1.0, "Quarter"])
    return base


SMALL = dict(segment_seconds=2.0, hop_seconds=1.0, max_sample_size=24000, min_sample_size=8000,
             max_batch_seconds=6.0, val_crop_seconds=1.0, num_workers=0,
             progress=False)  # fmt: skip


@pytest.mark.parametrize("nest", ["musicnet", "musicnet/musicnet", "."])
def test_layouts_are_found(tmp_path, nest):
    base = write_musicnet(tmp_path / nest, train=(("1", 0.2),), test=(("2", 0.2),))
    assert find_musicnet_dir(tmp_path) == base


@pytest.mark.parametrize("make", [False, True])
def test_missing_or_empty_root_says_where_and_how(tmp_path, make):
    root = tmp_path / "nowhere"
    if make:
        (root / "musicnet" / "train_data").mkdir(parents=True)
    with pytest.raises(MusicNetNotFoundError) as e:
        MusicNetDataModule(str(root), **SMALL).prepare_data()
    msg = str(e.value)
    assert str(root) in msg and "train_data" in msg and "Kaggle" in msg
    assert "lightning-w2v data download musicnet --root" in msg and "lightning-w2v demo" in msg


def test_missing_test_data_is_explained(tmp_path):
    base = write_musicnet(tmp_path / "musicnet", test=())
    with pytest.raises(MusicNetNotFoundError, match="test_data"):
        MusicNetDataModule(str(tmp_path), **SMALL).prepare_data()
    assert base.exists()


@pytest.fixture
def dm(tmp_path):
    write_musicnet(tmp_path / "musicnet" / "musicnet")  # Kaggle nesting, labels present
    m = MusicNetDataModule(str(tmp_path), **SMALL)
    m.prepare_data()
    m.setup("fit")
    return m


def test_prepare_builds_a_16k_mono_cache(dm, tmp_path):
    assert dm.cache_dir == tmp_path / "cache_16k"
    lengths = [e.num_samples for e in dm.train_index.entries]
    assert lengths == [int(np.ceil(int(s * 44100) * 16000 / 44100)) for s in (3.0, 2.2, 4.1)]
    assert len(dm.val_index) == 2
    s = dm.summary()
    assert s["train_recordings"] == 3 and s["val_recordings"] == 2
    # 3 s -> 0-2,1-3 ; 2.2 s -> 0-2, 0.2-2.2 ; 4.1 s -> 0-2,1-3,2-4,2.1-4.1
    assert s["train_segments"] == 8
    assert dm.train_seconds_per_epoch == pytest.approx(8 * 24000 / 16000)


def test_training_batches_are_equal_length_crops_of_the_cache(dm):
    arrays = [dm.train_index.load(e) for e in dm.train_index.entries]
    batches = list(dm.train_dataloader())
    assert sum(len(b["lengths"]) for b in batches) == len(dm.train_segments)
    for b in batches:
        w, n = b["waveforms"], b["lengths"]
        assert w.dtype == torch.float32 and n.dtype == torch.long and w.ndim == 2
        assert (n == w.shape[1]).all() and w.shape[1] == 24000
        assert w.shape[0] * w.shape[1] <= 6.0 * 16000
    # each crop is a contiguous slice of some cached recording, scaled by 1/32768
    row = (batches[0]["waveforms"][0].numpy() * 32768).round().astype(np.int16)
    def contains(a):
        starts = np.flatnonzero(a[: len(a) - 24000 + 1] == row[0])
        return any(np.array_equal(a[o : o + 24000], row) for o in starts)

    assert sum(contains(a) for a in arrays) == 1


def test_short_segments_shrink_the_whole_batch(tmp_path):
    write_musicnet(tmp_path / "musicnet", train=(("1", 0.6), ("2", 0.6)), test=(("3", 0.6),))
    m = MusicNetDataModule(str(tmp_path), **{**SMALL, "min_sample_size": 1000})
    m.prepare_data()
    (b,) = list(m.train_dataloader())
    assert b["waveforms"].shape == (2, int(np.ceil(0.6 * 16000)))


def test_validation_crops_are_fixed(dm):
    a = [b["waveforms"] for b in dm.val_dataloader()]
    b = [b["waveforms"] for b in dm.val_dataloader()]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(x.shape[1] == 16000 for x in a)
    # 2.5 s -> 0-1, 1-2, 1.5-2.5 ; 1.5 s -> 0-1, 0.5-1.5
    assert sum(x.shape[0] for x in a) == 5


def test_broken_recordings_are_named_before_training(tmp_path):
    base = write_musicnet(tmp_path / "musicnet")
    wav = base / "train_data" / "1728.wav"
    wav.write_bytes(wav.read_bytes()[:5000])  # an interrupted extraction
    (base / "test_data" / "1819.wav").write_bytes(b"")
    m = MusicNetDataModule(str(tmp_path), **SMALL)
    with pytest.raises(CacheBuildError) as e:
        m.prepare_data()
    msg = str(e.value)
    assert "1728.wav" in msg and "truncated" in msg and "1819.wav" in msg and "empty" in msg
    assert not (m.cache_dir / "train_1728.npy").exists()
    with pytest.raises(RuntimeError, match="train_1728"):  # setup refuses a partial cache
        m.setup("fit")


def test_crop_dataset_pickles_without_its_memory_maps(dm):
    ds = dm.train_dataloader().dataset
    ds.__getitems__([0, 1])  # opens memory-maps
    assert ds._arrays
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._arrays == {} and len(pickle.dumps(ds)) < 10_000
    assert clone.__getitems__([0])["waveforms"].shape == (1, 24000)


def test_max_recordings_limits_each_split(tmp_path):
    write_musicnet(tmp_path / "musicnet")
    m = MusicNetDataModule(str(tmp_path), **{**SMALL, "max_recordings": 1})
    m.prepare_data()
    m.setup("fit")
    assert len(m.train_index) == 1 and len(m.val_index) == 1


def test_datamodule_state_dict_resumes_the_sampler(dm):
    dl = dm.train_dataloader()
    dl.batch_sampler.set_epoch(1)
    full = list(dl.batch_sampler)
    it = iter(dl.batch_sampler)
    head = [next(it), next(it)]
    state = dm.state_dict()
    assert state["epoch"] == 1 and state["batches_consumed"] == 2

    fresh = MusicNetDataModule(dm.hparams.root, **SMALL)
    fresh.load_state_dict(state)  # Lightning restores before building loaders
    fresh.setup("fit")
    rest = list(fresh.train_dataloader().batch_sampler)
    assert head + rest == full


class _Recorder(pl.LightningModule):
    """Records a fingerprint of every training batch (crops are deterministic here)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[int, float]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, round(float(batch["waveforms"].sum()), 3)))
        return (self.w - batch["waveforms"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch")
@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader` but have no `validation_step`")
@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_lightning_resume_mid_epoch_continues_with_the_remaining_batches(tmp_path):
    # equal 2 s recordings and crops of 2 s: no random offsets, so batches are comparable
    recs = tuple((str(i), 2.0) for i in range(1, 9))
    write_musicnet(tmp_path / "musicnet", train=recs, test=(("99", 1.0),), channels=1)
    kw = {**SMALL, "max_sample_size": 32000, "max_batch_seconds": 4.0, "num_workers": 1}

    def fit(ckpt=None):
        model = _Recorder()
        out = tmp_path / ("resumed" if ckpt else "ckpt")
        cb = pl.callbacks.ModelCheckpoint(out, every_n_train_steps=3, save_top_k=-1)
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, callbacks=[cb],
                             limit_val_batches=0, enable_progress_bar=False,
                             enable_model_summary=False)  # fmt: skip
        trainer.fit(model, MusicNetDataModule(str(tmp_path), **kw), ckpt_path=ckpt)
        return model.seen

    full = fit()
    assert len(full) == 8  # 8 segments, 2 per batch, 2 epochs
    resumed = fit(str(tmp_path / "ckpt" / "epoch=0-step=3.ckpt"))
    assert resumed == full[3:]
