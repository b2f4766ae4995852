"""fairseq's semantics where they differ from transformers': masks, code perplexity, clipping, batch.

The reference below is fairseq's ``compute_mask_indices`` algorithm (REFERENCE.md section 6),
written out in numpy: per row ``int(p * n / L + u)`` spans (at least ``min_masks``), starts
drawn without replacement from ``0 .. n - L - 1``, then, with ``require_same_masks``, every
row thinned at random to the smallest masked count of the batch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lightning_w2v.models import PretrainingObjective, Wav2Vec2ForPretraining, tiny_config
from lightning_w2v.models.masking import compute_span_mask
from lightning_w2v.models.quantizer import GumbelVectorQuantizer

CONF = Path(__file__).resolve().parent.parent / "conf"
BASE_FRAMES = 780  # a 15.6 s crop


def fairseq_mask(rng: np.random.Generator, batch: int, frames: int, p: float, length: int, min_masks: int = 2,
                 require_same_masks: bool = True) -> np.ndarray:
    rows = []
    for _ in range(batch):
        num_mask = max(min_masks, int(p * frames / float(length) + rng.random()))
        min_len = length
        if frames - min_len <= num_mask:
            min_len = frames - num_mask - 1
        starts = rng.choice(frames - min_len, num_mask, replace=False)
        idc = np.asarray([s + offset for s in starts for offset in range(length)])
        rows.append(np.unique(idc[idc < frames]))
    if require_same_masks:
        fewest = min(len(r) for r in rows)
        rows = [rng.choice(r, fewest, replace=False) if len(r) > fewest else r for r in rows]
    mask = np.zeros((batch, frames), dtype=bool)
    for b, idc in enumerate(rows):
        mask[b, idc] = True
    return mask


def test_rows_have_equal_masked_counts_as_fairseq_requires():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        mask = compute_span_mask(4, BASE_FRAMES, 0.65, 10, 2, generator=generator, require_same_masks=True)
        counts = mask.sum(dim=1)
        assert (counts == counts[0]).all(), counts
    padded = compute_span_mask(3, 300, 0.65, 10, 2, lengths=torch.tensor([300, 200, 120]), generator=generator,
                               require_same_masks=True)
    assert len(set(padded.sum(dim=1).tolist())) == 1 and not padded[2, 120:].any()


def test_span_starts_leave_the_last_frame_unmasked():
    generator = torch.Generator().manual_seed(1)
    mask = compute_span_mask(2000, 40, 0.65, 10, 2, generator=generator)
    assert not mask[:, -1].any(), "fairseq draws starts from 0 .. n - L - 1"
    assert mask[:, -2].any(), "a span starting at n - L - 1 reaches frame n - 2"


def test_masked_fraction_matches_fairseq_at_base_settings_with_same_masks():
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(2)
    ours = [compute_span_mask(4, BASE_FRAMES, 0.65, 10, 2, generator=generator,
                              require_same_masks=True).float().mean().item() for _ in range(300)]
    theirs = [fairseq_mask(rng, 4, BASE_FRAMES, 0.65, 10).mean() for _ in range(300)]
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.004, (np.mean(ours), np.mean(theirs))
    assert 0.455 < np.mean(ours) < 0.475  # fairseq: ~0.466 at B=4 (0.49 before thinning)


def test_the_model_masks_with_fairseqs_default():
    model = Wav2Vec2ForPretraining(tiny_config())
    assert model.objective.require_same_masks and PretrainingObjective().require_same_masks
    mask = model.compute_mask(6, 300, generator=torch.Generator().manual_seed(3))
    assert len(set(mask.sum(dim=1).tolist())) == 1


def test_train_mode_code_perplexity_is_the_noise_free_count():
    torch.manual_seed(0)
    quantizer = GumbelVectorQuantizer(input_dim=16, num_groups=2, num_vars=8, codevector_dim=8, temperature=2.0)
    features = torch.randn(3, 50, 16)
    weights = torch.rand(3, 50) > 0.5
    quantizer.eval()
    noise_free = quantizer(features, frame_weights=weights).code_perplexity
    quantizer.train()
    trained = [quantizer(features, frame_weights=weights) for _ in range(3)]
    for out in trained:
        torch.testing.assert_close(out.code_perplexity, noise_free)
    # The straight-through choice still carries the Gumbel noise (it differs between draws).
    assert any(not torch.equal(trained[0].codes, other.codes) for other in trained[1:])


def test_the_papers_config_does_not_clip_as_fairseq_and_states_its_effective_batch():
    config = yaml.safe_load((CONF / "pretrain" / "musicnet_base.yaml").read_text())
    assert config["model"]["init_args"]["clip_grad_norm"] == 0.0  # fairseq BASE: clip_norm 0
    accumulate = config["trainer"]["accumulate_grad_batches"]
    seconds_per_update = accumulate * config["data"]["init_args"]["max_batch_seconds"]
    epochs = config["trainer"]["max_steps"] * seconds_per_update / (65 * 3600)  # ~65 h of segments
    assert seconds_per_update == pytest.approx(12 * 87.5)
    assert epochs == pytest.approx(1790, rel=0.02)  # the paper's 1,790 epochs


def test_no_clipping_leaves_the_gradient_as_it_is(tiny_pretrain_ckpt):
    from lightning_w2v import PretrainModule

    module = PretrainModule(preset="tiny", clip_grad_norm=0.0, warmup_steps=1)
    for p in module.parameters():
        p.grad = torch.full_like(p, 3.0)  # a global norm far above any clipping threshold
    before = [p.grad.clone() for p in module.parameters()]
    module.log = lambda *a, **k: None  # outside a Trainer: only the gradient matters here
    module.on_before_optimizer_step(None)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, module.parameters()))
