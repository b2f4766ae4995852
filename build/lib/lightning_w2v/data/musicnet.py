"""MusicNet for wav2vec 2.0 pre-training: a 16 kHz cache, 20 s segments, equal-length crops.

``prepare_data`` converts every recording (44.1 kHz, any channel count) once into the
16 kHz mono int16 cache of :mod:`lightning_w2v.data.cache`; training only slices
memory-maps. Training recordings are cut into segments (20 s, hop 10 s); each batch takes
random crops of one length, ``min(max_sample_size, shortest segment in the batch)``, so the
Transformer needs no padding mask. Batches are sized by seconds of audio
(:class:`~lightning_w2v.data.sampling.SecondsBatchSampler`). Crops are not normalised
(wav2vec 2.0 BASE uses ``normalize=False``). Crop offsets are drawn from
``(seed, epoch, the batch's segment indices)``: the same with any number of DataLoader
workers, and the same after a resume.

Validation uses the official test recordings (``test_data/``), cut into fixed
non-overlapping ``val_crop_seconds`` crops, the same every time.

The batch sampler shards batches among DDP ranks itself, so a multi-GPU Trainer must use
``Trainer(use_distributed_sampler=False)``; Lightning otherwise refuses a custom batch
sampler.

A batch is ``{"waveforms": FloatTensor (B, T), "lengths": LongTensor (B,), "indices":
LongTensor (B,)}`` with every length equal to T; ``indices`` are the rows of
``train_segments`` / ``val_segments`` the crops come from.

Bad data during training: training reads only the cache. A cache file that vanished, was
truncated or is corrupt raises :class:`CacheFileError` naming the file and saying how to
rebuild it (also from a DataLoader worker: the error is re-raised in the main process, not
as a worker traceback). A source WAV that breaks during a run does not affect it (the
cache is read); the next ``prepare_data`` reports it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..errors import DataError, LightningW2VError
from .cache import CacheIndex, build_cache, open_cache
from .sampling import SecondsBatchSampler, make_segments

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SPLITS = ("train", "test")


class MusicNetNotFoundError(LightningW2VError, FileNotFoundError):
    """The MusicNet folders are not under the data root; the message says where it looked."""


class CacheFileError(DataError, RuntimeError):
    """A 16 kHz cache file vanished, is truncated or is corrupt; the message names it."""


class _DeferredError:
    """An error met in a DataLoader worker, sent to the main process as the batch and raised
    there by :class:`_ReraisingDataLoader` with its own message (no worker traceback)."""

    def __init__(self, exc_type: type[BaseException], *args: Any) -> None:
        self.exc_type, self.args = exc_type, args

    def reraise(self) -> None:
        raise self.exc_type(*self.args)


class _ReraisingDataLoader(DataLoader):
    def __iter__(self):
        for batch in super().__iter__():
            if isinstance(batch, _DeferredError):
                batch.reraise()
            yield batch


class CropBatch(list):
    """A batch of segment indices that knows its epoch (crop offsets are drawn from both)."""

    def __init__(self, indices: list[int], epoch: int) -> None:
        super().__init__(indices)
        self.epoch = epoch


class _EpochTaggedSampler(SecondsBatchSampler):
    """:class:`SecondsBatchSampler` whose batches are :class:`CropBatch` es."""

    def __iter__(self):
        epoch = self.epoch
        for batch in super().__iter__():
            yield CropBatch(batch, epoch)


def find_musicnet_dir(root: str | os.PathLike) -> Path:
    """The folder holding ``train_data/``.

    Tried in order: ``root`` itself, ``root/musicnet`` (the archive's layout) and
    ``root/musicnet/musicnet`` (the Kaggle mirror's nesting).
    """
    root = Path(root).expanduser()
    for cand in (root, root / "musicnet", root / "musicnet" / "musicnet"):
        if any((cand / "train_data").glob("*.wav")):
            return cand
    raise MusicNetNotFoundError(
        f"MusicNet not found under {root}. Expected {root}/musicnet/train_data/*.wav and "
        f"test_data/*.wav (the layout of musicnet.tar.gz, Zenodo record 5120004), or the "
        f"Kaggle layout {root}/musicnet/musicnet/train_data, or a root that holds train_data "
        f"itself. Download it with `lightning-w2v data download musicnet --root {root}`, or "
        "make a small synthetic stand-in with `lightning-w2v demo`."
    )


def list_recordings(base: Path, split: str) -> list[tuple[str, Path]]:
    """``(rec_id, wav)`` of one split, ids as ``<split>_<file stem>``, sorted by stem."""
    wavs = sorted((base / f"{split}_data").glob("*.wav"), key=lambda p: (len(p.stem), p.stem))
    return [(f"{split}_{p.stem}", p) for p in wavs]


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
            return _DeferredError(CacheFileError, *e.args)  # raised by the main process
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

    A subclass implements :meth:`split_sources` and, in its ``__init__``, calls
    ``super().__init__(root, cache_dir)`` then ``self.save_hyperparameters()`` with at least
    these arguments: ``max_sample_size, min_sample_size, segment_seconds, hop_seconds,
    max_batch_seconds, num_workers, pin_memory, persistent_workers, val_crop_seconds, seed,
    progress`` (see :class:`MusicNetDataModule` for their meaning).
    """

    dataset_name = "audio"  # in log messages

    def __init__(self, root: str, cache_dir: str | None = None) -> None:
        super().__init__()
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
        build_cache(train + val, self.cache_dir, SAMPLE_RATE, self.hparams.progress)

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
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
        crops = np.minimum(self.train_segments[:, 2], self.hparams.max_sample_size)
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
        hp = self.hparams
        dataset.hint = self._rebuild_hint()
        return _ReraisingDataLoader(
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
        hp = self.hparams
        if self.train_index is None:
            self.setup("fit")
        sampler = _EpochTaggedSampler(
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
        hp = self.hparams
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


class MusicNetDataModule(CachedAudioDataModule):
    """MusicNet pre-training data (see the module docstring).

    Args:
        root: data root (see :func:`find_musicnet_dir` for the layouts found).
        cache_dir: where the 16 kHz cache lives; default ``<root>/cache_16k``.
        max_sample_size, min_sample_size: crop at most / segments at least this many samples.
        segment_seconds, hop_seconds: segmentation of the training recordings.
        max_batch_seconds: audio per batch per device (87.5 s = 1.4M samples, as fairseq).
        val_crop_seconds: length of the fixed validation crops.
        seed: batch order and crops are deterministic from it (and the epoch).
        max_recordings: use only the first N recordings of each split (quick runs).
    """

    dataset_name = "MusicNet"

    def rebuild_command(self) -> str:
        cache = "" if self.cache_dir == self.root / "cache_16k" else f" --cache-dir {self.cache_dir}"
        return f"lightning-w2v data prepare musicnet --root {self.root}{cache}"

    def __init__(
        self,
        root: str,
        cache_dir: str | None = None,
        max_sample_size: int = 250000,
        min_sample_size: int = 32000,
        segment_seconds: float = 20.0,
        hop_seconds: float = 10.0,
        max_batch_seconds: float = 87.5,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        val_crop_seconds: float = 10.0,
        seed: int = 0,
        max_recordings: int | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__(root, cache_dir)
        self.save_hyperparameters()

    # -- data discovery ---------------------------------------------------------------------
    def sources(self) -> dict[str, list[tuple[str, Path]]]:
        """``{"train": [(rec_id, wav)], "test": [...]}``, limited by ``max_recordings``."""
        base = find_musicnet_dir(self.root)
        out = {s: list_recordings(base, s) for s in SPLITS}
        if not out["test"]:
            raise MusicNetNotFoundError(
                f"no validation recordings: {base}/test_data/*.wav is missing or empty; "
                "MusicNet's archive ships 10 test recordings there (re-extract it)"
            )
        n = self.hparams.max_recordings
        return {s: v[:n] for s, v in out.items()} if n else out

    def split_sources(self) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
        """Training recordings, and the official test recordings for validation."""
        src = self.sources()
        return src["train"], src["test"]
