"""Files that break while a run is going: the documented behaviour, with or without workers.

MusicNet trains from the 16 kHz cache: a cache file that vanishes or is truncated stops the
run with :class:`CacheFileError` naming it and the rebuild command (and following that
advice works); a source WAV truncated mid-run does not disturb it, and the next
``prepare_data`` names it. NSynth reads WAVs: a truncated or vanished one stops the run with
``AudioFileError`` naming it, or with ``on_bad_file="skip"`` is skipped and counted in the
main process. Errors from DataLoader workers arrive as the same exception with the same
message, not as a worker traceback.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import soundfile as sf
import torch

from lightning_w2v.data.audio import AudioFileError
from lightning_w2v.data.cache import CacheBuildError
from lightning_w2v.data.musicnet import CacheFileError, MusicNetDataModule
from lightning_w2v.data.nsynth import NSynthDataModule

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers", "ignore:The number of training batches",
    "ignore:You defined a `validation_step`", "ignore:Total length of")


class MeanModel(pl.LightningModule):
    """The cheapest thing that trains on either data module's batches."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.examples = 0

    def training_step(self, batch, batch_idx):
        x = batch["waveforms"]
        self.examples += x.shape[0]
        return (self.w - x.mean()) ** 2 if x.numel() else self.w * 0.0

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Damage(pl.Callback):
    """Runs `damage()` once training has started: after setup, before the first batch is read."""

    def __init__(self, damage) -> None:
        self.damage = damage

    def on_train_start(self, trainer, pl_module):
        self.damage()


def fit(dm, *callbacks, **kw) -> MeanModel:
    model = MeanModel()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=list(callbacks),
                         **{"max_epochs": 1, **kw})
    trainer.fit(model, datamodule=dm)
    return model


def assert_clean(error: BaseException, *fragments: str) -> None:
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "Traceback" not in message and "worker process" not in message, message


def truncate(path: Path, keep: float = 0.5) -> None:
    os.truncate(path, int(path.stat().st_size * keep))


# --------------------------------------------------------------------------- MusicNet
def write_musicnet(root: Path, seconds=(3.0, 2.5, 3.5), sr: int = 16000) -> Path:
    rng = np.random.default_rng(0)
    for split, recs in (("train", {f"{1727 + i}": s for i, s in enumerate(seconds)}), ("test", {"1759": 1.5})):
        (root / "musicnet" / f"{split}_data").mkdir(parents=True, exist_ok=True)
        for rec_id, s in recs.items():
            x = 0.1 * rng.standard_normal(int(s * sr)).astype(np.float32)
            sf.write(root / "musicnet" / f"{split}_data" / f"{rec_id}.wav", x, sr, subtype="PCM_16")
    return root


def musicnet_dm(root: Path, workers: int = 0) -> MusicNetDataModule:
    return MusicNetDataModule(str(root), segment_seconds=1.0, hop_seconds=0.5, max_sample_size=12000,
                              min_sample_size=8000, max_batch_seconds=1.5, val_crop_seconds=1.0,
                              num_workers=workers, persistent_workers=False, progress=False)


def train_cache_files(dm: MusicNetDataModule) -> list[Path]:
    return sorted(dm.cache_dir.glob("train_*.npy"))


@pytest.mark.parametrize("workers", [0, 1])
def test_musicnet_cache_file_vanishing_mid_run_names_it_and_the_rebuild_command(tmp_path, workers):
    root = write_musicnet(tmp_path)
    dm = musicnet_dm(root, workers)

    def vanish():
        for f in train_cache_files(dm):
            f.unlink()

    with pytest.raises(CacheFileError) as e:
        fit(dm, Damage(vanish))
    assert_clean(e.value, "cache_16k", ".npy", "vanished",
                 f"`lightning-w2v data prepare musicnet --root {root}`")
    assert re.search(r"train_\d+\.npy: cannot read", str(e.value))
    # the advice works: preparing again rebuilds the missing files, and training runs
    assert fit(musicnet_dm(root, workers)).examples > 0


@pytest.mark.parametrize("workers", [0, 1])
def test_musicnet_cache_file_truncated_mid_run_names_it(tmp_path, workers):
    root = write_musicnet(tmp_path)
    dm = musicnet_dm(root, workers)
    with pytest.raises(CacheFileError) as e:
        fit(dm, Damage(lambda: [truncate(f) for f in train_cache_files(dm)]))
    assert_clean(e.value, ".npy: cannot read", "truncated or corrupt", "lightning-w2v data prepare musicnet")


def _read_truncate_read(files: list[str], segments: np.ndarray, queue) -> None:
    from lightning_w2v.data.musicnet import SegmentCrops

    crops = SegmentCrops([Path(f) for f in files], segments, None, False)
    crops.__getitems__(list(range(len(segments))))  # memory-maps every file
    for f in files:
        truncate(Path(f), 0.3)
    try:
        crops.__getitems__(list(range(len(segments))))
        queue.put("no error")
    except CacheFileError as e:
        queue.put(str(e))


def test_musicnet_cache_truncated_under_an_open_memory_map_raises_instead_of_sigbus(tmp_path):
    # Reading a memory-mapped page past a file's new end kills the process with SIGBUS; the
    # dataset must notice the truncation first. Run in a forked child so a SIGBUS fails the
    # test instead of killing pytest.
    root = write_musicnet(tmp_path)
    dm = musicnet_dm(root)
    dm.prepare_data()
    dm.setup("fit")
    files = [str(f) for f in dm._files(dm.train_index)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_truncate_read, args=(files, dm.train_segments, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0, f"the reader died with exit code {child.exitcode} (-7: SIGBUS)"
    message = queue.get(timeout=5)
    assert "truncated or corrupt" in message and ".npy" in message, message


def test_musicnet_source_wav_truncated_mid_run_does_not_disturb_it_and_is_named_next_time(tmp_path):
    root = write_musicnet(tmp_path)
    wav = root / "musicnet" / "train_data" / "1728.wav"
    model = fit(musicnet_dm(root), Damage(lambda: truncate(wav)))  # training reads the cache only
    assert model.examples > 0
    with pytest.raises(CacheBuildError) as e:
        musicnet_dm(root).prepare_data()
    assert "1728.wav" in str(e.value) and "truncated" in str(e.value)


# --------------------------------------------------------------------------- NSynth
def write_nsynth(root: Path) -> Path:
    """6 train notes (two families x three pitches), 2 valid, 2 test; 4 s, 16 kHz, mono."""
    for split, insts in (("train", (1, 2, 3)), ("valid", (4,)), ("test", (5,))):
        d = root / f"nsynth-{split}"
        (d / "audio").mkdir(parents=True, exist_ok=True)
        notes = {}
        for inst in insts:
            for family, name in ((0, "bass"), (3, "guitar")):
                pitch = 40 + inst
                key = f"{name}_acoustic_{inst:03d}-{pitch:03d}-100"
                notes[key] = {"note_str": key, "pitch": pitch, "velocity": 100, "instrument_str": key[:-8],
                              "instrument_family": family, "instrument": inst, "sample_rate": 16000}
                x = np.full(64000, 0.01 * inst, dtype=np.float32)
                sf.write(d / "audio" / f"{key}.wav", x, 16000, subtype="PCM_16")
        (d / "examples.json").write_text(json.dumps(notes))
    return root


def nsynth_dm(root: Path, workers: int, **kw) -> NSynthDataModule:
    return NSynthDataModule(str(root), task="instrument", batch_size=4, num_workers=workers,
                            persistent_workers=False, **kw)


def victim_note(root: Path) -> Path:
    return sorted((root / "nsynth-train" / "audio").glob("*.wav"))[2]


def break_file(path: Path, how: str) -> None:
    if how == "vanished":
        path.unlink()
    else:
        truncate(path)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("how", ["truncated", "vanished"])
def test_nsynth_bad_wav_mid_run_fails_fast_with_its_name(tmp_path, how, workers):
    root = write_nsynth(tmp_path)
    victim = victim_note(root)
    dm = nsynth_dm(root, workers)  # default on_bad_file="raise"; setup checks every header first
    with pytest.raises(AudioFileError) as e:
        fit(dm, Damage(lambda: break_file(victim, how)))
    assert_clean(e.value, str(victim), "truncated" if how == "truncated" else "file not found")
    assert e.value.path == str(victim)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("how", ["truncated", "vanished"])
def test_nsynth_bad_wav_mid_run_is_skipped_and_counted(tmp_path, how, workers, caplog):
    root = write_nsynth(tmp_path)
    victim = victim_note(root)
    dm = nsynth_dm(root, workers, on_bad_file="skip")
    with caplog.at_level(logging.WARNING, logger="lightning_w2v.data.nsynth"):
        model = fit(dm, Damage(lambda: break_file(victim, how)), max_epochs=2)
    assert model.examples == 2 * (6 - 1)  # two epochs of the five good notes
    assert dm.datasets["train"].num_skipped == 2  # counted in the main process, workers or not
    warned = [r.getMessage() for r in caplog.records if "skipping note" in r.getMessage()]
    assert len(warned) == 2 and all(victim.stem in m for m in warned), warned
