"""PretrainModule: schedules, normalisation, bf16 fit, checkpoint contents, non-finite updates."""
from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from lightning_w2v import PretrainModule
from lightning_w2v.tasks.schedules import gumbel_temperature, warmup_linear_decay


def test_lr_schedule_warms_up_linearly_then_decays_to_zero():
    assert warmup_linear_decay(0, 100, 1000) == pytest.approx(0.01)
    assert warmup_linear_decay(49, 100, 1000) == pytest.approx(0.5)
    assert warmup_linear_decay(100, 100, 1000) == pytest.approx(1.0)
    assert warmup_linear_decay(550, 100, 1000) == pytest.approx(0.5)
    assert warmup_linear_decay(1000, 100, 1000) == 0.0
    assert warmup_linear_decay(5000, 100, 1000) == 0.0


def test_gumbel_temperature_anneals_from_2_to_half_like_fairseq():
    assert gumbel_temperature(0, 2.0, 0.5, 0.999995) == 2.0
    assert gumbel_temperature(100_000, 2.0, 0.5, 0.999995) == pytest.approx(2.0 * 0.999995**100_000)
    floor_step = math.ceil(math.log(0.25) / math.log(0.999995))  # ~277k updates
    assert gumbel_temperature(floor_step + 10, 2.0, 0.5, 0.999995) == 0.5


def _loader(batches: int = 3, samples: int = 16000):
    data = [torch.randn(samples) for _ in range(2 * batches)]
    return torch.utils.data.DataLoader(data, batch_size=2, collate_fn=lambda xs: {"waveforms": torch.stack(xs)})


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, default_root_dir=tmp_path)
    return pl.Trainer(**{**defaults, **kwargs})


def test_bf16_fit_step_updates_the_temperature_and_stores_the_config(tmp_path):
    module = PretrainModule(preset="tiny", warmup_steps=1)
    trainer = _trainer(tmp_path, max_steps=3, precision="bf16-mixed")
    trainer.fit(module, _loader(), _loader(1))
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/prob_perplexity", "train/code_perplexity", "train/grad_norm",
                "train/temperature", "train/accuracy", "train/masked_fraction", "train/lr",
                "train/audio_seconds_per_second", "val/contrastive_loss"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    decay = module.objective.temperature_decay
    assert module.model.quantizer.temperature.item() == pytest.approx(2.0 * decay**2)  # set before step 3
    trainer.save_checkpoint(tmp_path / "p.ckpt")
    checkpoint = torch.load(tmp_path / "p.ckpt", weights_only=False)
    assert checkpoint["wav2vec2_config"]["embed_dim"] == module.config.embed_dim
    assert not any(k.startswith("_forward") for k in checkpoint["state_dict"])


def test_loss_is_normalised_by_masked_frames():
    module = PretrainModule(preset="tiny")
    out = module.model(torch.randn(2, 16000))
    per_frame = out.loss / out.num_masked
    assert per_frame.item() < 10 * math.log(module.objective.num_negatives + 1)  # a mean, not a sum


class _PoisonedPretrain(PretrainModule):
    """Produces a NaN loss on its second training batch."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if batch_idx == 1 else loss


def test_non_finite_update_is_skipped_without_touching_parameters(tmp_path):
    module = _PoisonedPretrain(preset="tiny", warmup_steps=1)
    snapshots = {}

    class Snapshot(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            snapshots[batch_idx] = {n: p.detach().clone() for n, p in pl_module.named_parameters()}

    trainer = _trainer(tmp_path, max_steps=3, callbacks=[Snapshot()])
    trainer.fit(module, _loader())
    assert module.skipped_updates == 1
    unchanged = all(torch.equal(snapshots[1][n], snapshots[2][n]) for n in snapshots[1])
    assert unchanged, "the NaN step changed parameters"
    assert all(torch.isfinite(p).all() for p in module.parameters())
    changed = any(not torch.equal(snapshots[0][n], snapshots[1][n]) for n in snapshots[0])
    assert changed, "the healthy first step must update"


def test_consecutive_non_finite_updates_stop_the_run_with_a_clear_error(tmp_path):
    class AlwaysNaN(PretrainModule):
        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx) * float("nan")

    module = AlwaysNaN(preset="tiny", max_consecutive_skips=2)
    with pytest.raises(Exception, match="2 consecutive updates had a non-finite loss"):
        _trainer(tmp_path, max_steps=5).fit(module, _loader())
