"""Pre-training data from cached recordings: the machinery MusicNet and any audio folder share.

``prepare_data`` converts every recording once into the 16 kHz mono int16 cache of
:mod:`lightning_w2v.data.cache`; training only slices memory-maps. Training recordings are
cut into segments (``segment_seconds``, hop ``hop_seconds``); each batch takes random crops
of one length, ``min(max_sample_size, shortest segment in the batch)``, so the Transformer
needs no padding mask. Batches are sized by seconds of audio
(:class:`~lightning_w2v.data.sampling.SecondsBatchSampler`). Crops are not normalised
(wav2vec 2.0 BASE uses ``normalize=False``). Crop offsets are drawn from
``(seed, epoch, the batch's segment indices)``: the same with any number of DataLoader
workers, and the same after a resume. Validation recordings are cut into fixed
non-overlapping ``val_crop_seconds`` crops, the same every time.

The batch sampler shards batches among DDP ranks itself, so a multi-GPU Trainer must use
``Trainer(use_distributed_sampler=False)``; Lightning otherwise refuses a custom batch
sampler.

A batch is ``{"waveforms": FloatTensor (B, T), "lengths": LongTensor (B,), "indices":
LongTensor (B,)}`` with every length equal to T; ``indices`` are the rows of
``train_segments`` / ``val_segments`` the crops come from.

Bad data during training: training reads only the cache. A cache file that vanished, was
truncated or is corrupt raises :class:`CacheFileError` naming the file and saying how to
rebuild it (also from a DataLoader worker). A source file that breaks during a run does not
affect it; the next ``prepare_data`` reports it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..errors import DataError
from ..vocabulary import SAMPLE_RATE
from .cache import CacheIndex, build_cache, open_cache
from .sampling import SecondsBatchSampler, make_segments
from .workers import DeferredError, RelayingDataLoader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropSettings:
    """How cached recordings become batches; the defaults are fairseq BASE's.

    A data module built on :class:`CachedAudioDataModule` spells these out as its own
    constructor arguments (LightningCLI reads each class's signature for ``--help`` and
    overrides) and hands them over with :meth:`take`.
    """

    max_sample_size: int = 250000  # crop at most this many samples (15.6 s)
    min_sample_size: int = 32000  # segments shorter than this are dropped
    segment_seconds: float = 20.0  # the paper's 20 s segments...
    hop_seconds: float = 10.0  # ...with a 10 s hop
    max_batch_seconds: float = 87.5  # audio per batch per device (1.4M samples, as fairseq)
    num_workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True
    val_crop_seconds: float = 10.0  # length of the fixed validation crops
    seed: int = 0  # batch order and crops are deterministic from it (and the epoch)
    progress: bool = True  # a progress bar while the cache is built

    @classmethod
    def take(cls, arguments: Mapping[str, Any]) -> "CropSettings":
        """The settings among a constructor's ``arguments`` (e.g. its ``locals()``)."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls)})


class CacheFileError(DataError, RuntimeError):
    """A 16 kHz cache file vanished, is truncated or is corrupt; the message names it."""


class CropBatch(list):
    """A batch of segment indices that knows its epoch (crop offsets are drawn from both)."""

    def __init__(self, indices: list[int], epoch: int) -> None:
        super().__init__(indices)
        self.epoch = epoch


class EpochTaggedSampler(SecondsBatchSampler):
    """:class:`SecondsBatchSampler` whose batches are :class:`CropBatch` es."""

    def __iter__(self):
        epoch = self.epoch
        for batch in super().__iter__():
            yield CropBatch(batch, epoch)


class SegmentCrops(Dataset):
    """Crops of cached recordings; fetched a whole batch at a time via ``__getitems__``.

    ``segments`` rows are ``(recording, start, length)`` in samples. A batch takes one crop
    length, ``min(max_sample_size, shortest segment)``; offsets are random inside each
    segment (``random_crop``) or centred. Random offsets come from ``(seed, epoch, indices)``
    when the indices are a :class:`CropBatch`, else from a per-process stream. Memory-maps
    are opened lazily in each worker process and are never pickled; a file that changed on
    disk since (rebuilt, truncated) is opened again, and one that vanished or is truncated
    raises :class:`CacheFileError` (``hint`` says how to rebuild it).
    """

    def __init__(
        self,
        files: list[Path],
        segments: np.ndarray,
        max_sample_size: int | None,
        random_crop: bool,
        seed: int = 0,
        hint: str = "delete it and rebuild the cache with `lightning-w2v data prepare musicnet --root ROOT`",
    ) -> None:
        self.files = [str(f) for f in files]
        self.segments = segments  # (N, 3) int64
        self.max_sample_size = max_sample_size
        self.random_crop = random_crop
        self.seed = seed
        self.hint = hint
        self._arrays: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}  # rec -> (memmap, (inode, size))
        self._rng: tuple[int, np.random.Generator] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": {}, "_rng": None}

    def __len__(self) -> int:
        return len(self.segments)

    def _array(self, rec: int) -> np.ndarray:
        # A stat per crop: a memory-mapped file truncated under us would kill the process
        # with SIGBUS on the first read past its new end, so look before reading.
        st = os.stat(self.files[rec])
        key = (st.st_ino, st.st_size)
        cached = self._arrays.get(rec)
        if cached is None or cached[1] != key:
            self._arrays[rec] = (np.load(self.files[rec], mmap_mode="r"), key)  # (n,) int16
        return self._arrays[rec][0]

    def _crop(self, rec: int, start: int, length: int) -> np.ndarray:
        path = self.files[rec]
        try:
            array = self._array(rec)
            if array.ndim != 1 or array.shape[0] < start + length:
                raise ValueError(f"it holds {array.shape[0]} samples, a crop needs {start + length}")
            return array[start : start + length]
        except FileNotFoundError:
            self._arrays.pop(rec, None)
            problem = "the file vanished (deleted or moved while training)"
        except (OSError, ValueError, EOFError) as e:
            self._arrays.pop(rec, None)
            problem = f"the file is truncated or corrupt ({e})"
        raise CacheFileError(f"{path}: cannot read this 16 kHz MusicNet cache file: {problem}; {self.hint}")

    def _generator(self) -> np.random.Generator:
        # torch seeds every worker differently (and reproducibly under seed_everything)
        if self._rng is None or self._rng[0] != os.getpid():
            self._rng = (os.getpid(), np.random.default_rng([self.seed, torch.initial_seed()]))
        return self._rng[1]

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        seg = self.segments[np.asarray(indices, dtype=np.int64)]  # (B, 3)
        crop = int(seg[:, 2].min())
        if self.max_sample_size is not None:
            crop = min(crop, self.max_sample_size)
        slack = seg[:, 2] - crop  # (B,)
        if not self.random_crop:
            offsets = slack // 2
        else:
            epoch = getattr(indices, "epoch", None)
            rng = self._generator() if epoch is None else np.random.default_rng([self.seed, epoch, *indices])
            offsets = rng.integers(0, slack + 1)
        starts = seg[:, 1] + offsets  # (B,)
        out = np.empty((len(seg), crop), dtype=np.float32)  # (B, T)
        try:
            for b, (rec, s) in enumerate(zip(seg[:, 0].tolist(), starts.tolist())):
                out[b] = self._crop(rec, s, crop)
        except CacheFileError as e:
            if get_worker_info() is None:
                raise
            return DeferredError(e)  # raised by the main process
        out *= 1.0 / 32768.0
        lengths = torch.full((len(seg),), crop, dtype=torch.long)  # (B,)
        return {"waveforms": torch.from_numpy(out), "lengths": lengths,
                "indices": torch.as_tensor(list(indices), dtype=torch.long)}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])


def _batch_as_is(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch  # __getitems__ already built the batch


class CachedAudioDataModule(pl.LightningDataModule):
    """Pre-training data from any set of recordings: the shared machinery of the data modules.

    ``prepare_data`` builds the 16 kHz cache, ``setup`` cuts the training recordings into
    segments (``segment_seconds``, hop ``hop_seconds``) and the validation recordings into
    fixed ``val_crop_seconds`` crops, the loaders batch them by seconds of audio
    (:class:`SecondsBatchSampler`) as equal-length :class:`SegmentCrops`, and
    ``state_dict`` / ``load_state_dict`` resume the train sampler mid-epoch.

    A subclass implements :meth:`split_sources`, lists the :class:`CropSettings` among its
    own constructor arguments, and calls ``super().__init__(root, cache_dir,
    CropSettings.take(locals()))`` (then ``self.save_hyperparameters()``, so that
    checkpoints and loggers record them).
    """

    dataset_name = "audio"  # in log messages

    def __init__(self, root: str, cache_dir: str | None, settings: CropSettings) -> None:
        super().__init__()
        self.settings = settings
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root / "cache_16k"
        self.train_index: CacheIndex | None = None
        self.val_index: CacheIndex | None = None
        self.train_segments = np.zeros((0, 3), dtype=np.int64)
        self.val_segments = np.zeros((0, 3), dtype=np.int64)
        self._train_sampler: SecondsBatchSampler | None = None
        self._pending_state: dict[str, int] | None = None

    def split_sources(self) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
        """``(train, val)`` lists of ``(rec_id, audio file)``; ids unique and file-name safe."""
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Build (or update) the 16 kHz cache; reports every bad file before training."""
        train, val = self.split_sources()
        build_cache(train + val, self.cache_dir, SAMPLE_RATE, self.settings.progress)

    def setup(self, stage: str | None = None) -> None:
        hp = self.settings
        train, val = self.split_sources()
        self.train_index = open_cache(train, self.cache_dir, SAMPLE_RATE)
        self.val_index = open_cache(val, self.cache_dir, SAMPLE_RATE)
        seg, hop = round(hp.segment_seconds * SAMPLE_RATE), round(hp.hop_seconds * SAMPLE_RATE)
        lengths = [e.num_samples for e in self.train_index.entries]
        self.train_segments = make_segments(lengths, seg, hop, hp.min_sample_size)
        val_crop = round(hp.val_crop_seconds * SAMPLE_RATE)
        val_lengths = [e.num_samples for e in self.val_index.entries]
        self.val_segments = make_segments(val_lengths, val_crop, val_crop, hp.min_sample_size)
        if len(self.train_segments) == 0:
            raise DataError(
                f"no training segments: every recording under {self.root} is shorter than "
                f"min_sample_size={hp.min_sample_size} samples"
            )
        log.info("%s: %s", self.dataset_name, self.summary())

    # -- summary --------------------------------------------------------------------------
    @property
    def train_seconds_per_epoch(self) -> float:
        """Audio seconds the model sees per epoch (segments cropped to max_sample_size)."""
        crops = np.minimum(self.train_segments[:, 2], self.settings.max_sample_size)
        return float(crops.sum()) / SAMPLE_RATE

    def summary(self) -> dict[str, float]:
        ti, vi = self.train_index, self.val_index
        return {
            "train_recordings": len(ti) if ti else 0,
            "train_hours": round(ti.hours, 4) if ti else 0.0,
            "val_recordings": len(vi) if vi else 0,
            "val_hours": round(vi.hours, 4) if vi else 0.0,
            "train_segments": len(self.train_segments),
            "segment_hours": round(float(self.train_segments[:, 2].sum()) / SAMPLE_RATE / 3600, 4),
            "train_seconds_per_epoch": round(self.train_seconds_per_epoch, 2),
            "val_crops": len(self.val_segments),
        }

    # -- loaders --------------------------------------------------------------------------
    def _files(self, index: CacheIndex) -> list[Path]:
        return [index.path(e) for e in index.entries]

    def rebuild_command(self) -> str | None:
        """The shell command that rebuilds this data's cache (named in cache errors), if any."""
        return None

    def _rebuild_hint(self) -> str:
        command = self.rebuild_command()
        if command:
            return f"delete it if it is still there and rebuild the cache with `{command}`"
        return ("delete it if it is still there and run again: prepare_data() rebuilds missing "
                "cache files before training")  # fmt: skip

    def _loader(self, dataset: SegmentCrops, sampler: SecondsBatchSampler) -> DataLoader:
        hp = self.settings
        dataset.hint = self._rebuild_hint()
        return RelayingDataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=_batch_as_is,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory and torch.cuda.is_available(),
            persistent_workers=hp.persistent_workers and hp.num_workers > 0,
            # Workers' base seeds come from this generator, not the global RNG: making a
            # loader iterator then draws nothing from torch's global RNG, so training
            # randomness does not depend on when loaders are (re)created, e.g. on resume.
            generator=torch.Generator().manual_seed(hp.seed),
        )

    def train_dataloader(self) -> DataLoader:
        hp = self.settings
        if self.train_index is None:
            self.setup("fit")
        sampler = EpochTaggedSampler(
            self.train_segments[:, 2],
            hp.max_batch_seconds,
            SAMPLE_RATE,
            max_sample_size=hp.max_sample_size,
            shuffle=True,
            seed=hp.seed,
        )
        if self._pending_state is not None:
            sampler.load_state_dict(self._pending_state)
            self._pending_state = None
        self._train_sampler = sampler
        files = self._files(self.train_index)
        ds = SegmentCrops(files, self.train_segments, hp.max_sample_size, True, hp.seed)
        return self._loader(ds, sampler)

    def val_dataloader(self) -> DataLoader:
        hp = self.settings
        if self.val_index is None:
            self.setup("validate")
        lengths = self.val_segments[:, 2]
        sampler = SecondsBatchSampler(lengths, hp.max_batch_seconds, SAMPLE_RATE, shuffle=False)
        ds = SegmentCrops(self._files(self.val_index), self.val_segments, None, False, hp.seed)
        return self._loader(ds, sampler)

    # -- resuming mid-epoch ---------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        """The train sampler's position: ``{"epoch", "batches_consumed", "seed"}``.

        Under a Trainer the count is the trainer's own number of processed batches of the
        current epoch, because DataLoader workers prefetch ahead of training.
        """
        if self._train_sampler is None:
            return dict(self._pending_state or {})
        state = self._train_sampler.state_dict()
        trainer = self.trainer
        if trainer is not None and trainer.state.fn == TrainerFn.FITTING:
            state["epoch"] = trainer.current_epoch
            state["batches_consumed"] = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return state

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if not state_dict:
            return
        if self._train_sampler is not None:
            self._train_sampler.load_state_dict(state_dict)
        else:
            self._pending_state = dict(state_dict)


