"""Parity with transformers.Wav2Vec2ForPreTraining on the same weights, mask and negatives."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from lightning_w2v.models import preset_objective, tiny_config  # noqa: E402
from lightning_w2v.models.interop import config_to_huggingface, from_huggingface_pretraining  # noqa: E402


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    hf_config = config_to_huggingface(tiny_config(), preset_objective("tiny", num_negatives=12))
    model = transformers.Wav2Vec2ForPreTraining(hf_config).eval()
    return model


def _hf_logits(hf, out, negatives):
    """Rebuild transformers' logits (K+1, B, T) from its projected states, as its forward does."""
    batch, frames, num_neg = negatives.shape
    quantized = out.projected_quantized_states  # (B, T, F)
    flat = quantized.reshape(batch * frames, -1)
    offsets = (torch.arange(batch) * frames)[:, None, None]
    neg = flat[(negatives + offsets).reshape(-1)].view(batch, frames, num_neg, -1).permute(2, 0, 1, 3)
    logits = hf.compute_contrastive_logits(quantized[None], neg, out.projected_states, 0.1)
    neg_is_pos = (quantized == neg).all(-1)
    logits[1:][neg_is_pos] = float("-inf")
    return logits.permute(1, 2, 0)  # (B, T, K+1)


def test_contrastive_logits_and_loss_match_transformers(hf_model, fixed_inputs):
    ours = from_huggingface_pretraining(hf_model).eval()
    waveforms, mask, negatives = fixed_inputs(ours)
    offsets = (torch.arange(mask.shape[0]) * mask.shape[1])[:, None, None]
    with torch.no_grad():
        out = ours(waveforms, mask=mask, negative_indices=negatives)
        ref = hf_model(waveforms, mask_time_indices=mask, sampled_negative_indices=negatives + offsets)
        ref_logits = _hf_logits(hf_model, ref, negatives)

    ours_masked, ref_masked = out.logits[mask], ref_logits[mask]
    finite = torch.isfinite(ref_masked)
    assert torch.equal(finite, torch.isfinite(ours_masked)), "neg_is_pos -inf pattern differs"
    rel = (ours_masked[finite] - ref_masked[finite]).abs().max() / ref_masked[finite].abs().max()
    assert rel < 1e-4, f"logits differ: max relative error {rel:.2e}"
    loss_rel = (out.contrastive_loss - ref.contrastive_loss).abs() / ref.contrastive_loss.abs()
    assert loss_rel < 1e-4, f"contrastive loss {out.contrastive_loss} vs transformers {ref.contrastive_loss}"
    assert int(out.num_masked) == int(mask.sum())


def test_parity_catches_a_wrong_weight(hf_model, fixed_inputs):
    """The comparison above is sensitive: perturbing one projection breaks it."""
    ours = from_huggingface_pretraining(hf_model).eval()
    with torch.no_grad():
        ours.final_proj.weight.add_(0.05 * torch.randn_like(ours.final_proj.weight))
    waveforms, mask, negatives = fixed_inputs(ours)
    offsets = (torch.arange(mask.shape[0]) * mask.shape[1])[:, None, None]
    with torch.no_grad():
        out = ours(waveforms, mask=mask, negative_indices=negatives)
        ref = hf_model(waveforms, mask_time_indices=mask, sampled_negative_indices=negatives + offsets)
    assert (out.contrastive_loss - ref.contrastive_loss).abs() / ref.contrastive_loss > 1e-3


def test_encoder_hidden_states_match_transformers(hf_model):
    ours = from_huggingface_pretraining(hf_model).eval()
    waveforms = torch.randn(2, 12000)
    with torch.no_grad():
        mine = ours.backbone(waveforms, output_hidden_states=True)
        ref = hf_model.wav2vec2(waveforms, output_hidden_states=True)
    assert len(mine.hidden_states) == len(ref.hidden_states)
    for a, b in zip(mine.hidden_states, ref.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mine.last_hidden_state, ref.last_hidden_state, atol=1e-5, rtol=1e-5)
