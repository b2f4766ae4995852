"""Unit tests of the wav2vec 2.0 parts: masking, negatives, quantizer, losses, dtypes."""
from __future__ import annotations

import math

import pytest
import torch

from lightning_w2v.models import GumbelVectorQuantizer, Wav2Vec2ForPretraining, base_config, tiny_config
from lightning_w2v.models.losses import contrastive_logits, diversity_loss, infonce_loss
from lightning_w2v.models.masking import compute_span_mask, sample_negative_indices


def test_masked_fraction_matches_fairseq_at_base_settings():
    generator = torch.Generator().manual_seed(0)
    mask = compute_span_mask(64, 780, 0.65, 10, 2, generator=generator)  # 15.6 s crops
    fraction = mask.float().mean().item()
    # Overlapping spans: 1 - (1 - 0.065)^10 ~= 0.49 (fairseq reports ~49%).
    assert 0.46 < fraction < 0.53, fraction


def test_mask_spans_have_the_configured_length_and_respect_padding():
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([200, 120, 60])
    mask = compute_span_mask(3, 200, 0.65, 10, 2, lengths=lengths, generator=generator)
    for row, length in zip(mask, lengths):
        assert not row[length:].any(), "padding frames must never be masked"
        # Every run of masked frames is at least one span long.
        runs, current = [], 0
        for value in row[:length].tolist() + [False]:
            if value:
                current += 1
            elif current:
                runs.append(current)
                current = 0
        assert runs and min(runs) >= 10, runs


def test_min_masks_applies_to_short_inputs():
    generator = torch.Generator().manual_seed(2)
    mask = compute_span_mask(16, 25, 0.01, 5, min_masks=2, generator=generator)
    assert (mask.sum(dim=1) >= 5).all()


def test_negatives_never_the_positive_and_always_masked_frames_of_the_same_example():
    generator = torch.Generator().manual_seed(3)
    mask = compute_span_mask(4, 150, 0.65, 10, 2, generator=generator)
    negatives = sample_negative_indices(mask, 100, generator=generator)  # (B, T, K)
    assert negatives.shape == (4, 150, 100)
    frames = torch.arange(150)[None, :, None].expand_as(negatives)
    masked = mask[:, :, None].expand_as(negatives)
    assert not (negatives == frames)[masked].any(), "a negative equals its own positive"
    picked_is_masked = torch.gather(mask, 1, negatives.view(4, -1)).view_as(negatives)
    assert picked_is_masked[masked].all(), "a negative came from an unmasked frame"
    # Uniform over the other masked frames: every candidate of example 0 gets drawn.
    used = torch.unique(negatives[0][mask[0]])
    assert used.numel() == int(mask[0].sum())


def test_quantizer_perplexity_uniform_and_collapsed():
    quantizer = GumbelVectorQuantizer(input_dim=8, num_groups=2, num_vars=4, codevector_dim=8).eval()
    with torch.no_grad():
        quantizer.weight_proj.weight.zero_()
        quantizer.weight_proj.bias.zero_()
    out = quantizer(torch.randn(2, 10, 8))
    # All logits equal: the soft distribution is uniform (perplexity V per group = G*V).
    assert out.prob_perplexity.item() == pytest.approx(8.0, rel=1e-4)
    # ... and the argmax is always entry 0: hard perplexity 1 per group.
    assert out.code_perplexity.item() == pytest.approx(2.0, rel=1e-4)
    assert diversity_loss(out.prob_perplexity, quantizer.num_codes).item() == pytest.approx(0.0, abs=1e-4)


def test_quantizer_straight_through_gradient_is_soft_and_forward_is_one_hot():
    torch.manual_seed(0)
    quantizer = GumbelVectorQuantizer(input_dim=6, num_groups=2, num_vars=5, codevector_dim=4).train()
    features = torch.randn(1, 7, 6, requires_grad=True)
    out = quantizer(features)
    codebook = quantizer.codevectors.view(2, 5, 2)
    expected = torch.stack([codebook[g, out.codes[0, :, g]] for g in range(2)], dim=1).reshape(7, 4)
    torch.testing.assert_close(out.quantized[0], expected)  # forward picks exact codevectors
    out.quantized.sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0  # gradient flows through softmax
    assert quantizer.weight_proj.weight.grad.abs().sum() > 0


def test_quantizer_eval_is_deterministic_argmax():
    quantizer = GumbelVectorQuantizer(input_dim=6, num_groups=2, num_vars=5, codevector_dim=4).eval()
    features = torch.randn(2, 9, 6)
    a, b = quantizer(features), quantizer(features)
    assert torch.equal(a.codes, b.codes)
    assert torch.equal(a.codes, quantizer.code_logits(features).argmax(-1))


def test_infonce_is_zero_for_a_perfect_positive_and_log_k_plus_1_for_ties():
    logits = torch.zeros(1, 3, 5)
    mask = torch.tensor([[True, True, False]])
    assert infonce_loss(logits, mask).item() == pytest.approx(2 * math.log(5), rel=1e-6)
    logits[..., 0] = 1e4
    assert infonce_loss(logits, mask).item() == pytest.approx(0.0, abs=1e-4)


def test_negative_with_the_same_code_gets_minus_inf():
    predicted = torch.randn(1, 4, 3)
    targets = torch.randn(1, 4, 3)
    codes = torch.tensor([[[0, 1], [0, 1], [2, 3], [4, 5]]])
    negatives = torch.tensor([[[1, 2], [0, 3], [0, 1], [0, 2]]])
    logits = contrastive_logits(predicted, targets, negatives, codes, 0.1)
    assert torch.isinf(logits[0, 0, 1]) and torch.isinf(logits[0, 1, 1])  # frames 0 and 1 share codes
    assert torch.isfinite(logits[0, 2]).all() and torch.isfinite(logits[0, 3]).all()


def test_base_preset_has_the_papers_size():
    model = Wav2Vec2ForPretraining(base_config())
    params = sum(p.numel() for p in model.parameters())
    assert 94e6 < params < 96e6, params  # fairseq reports 95M for BASE
    assert model.config.downsampling == 320
    assert model.config.num_frames(16000) == 49


def test_tiny_forward_backward_and_bf16_autocast():
    model = Wav2Vec2ForPretraining(tiny_config()).train()
    waveforms = torch.randn(2, 16000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(waveforms)
    assert out.logits.dtype == torch.float32  # similarities are computed in fp32
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.mask_emb.grad is not None and torch.isfinite(model.mask_emb.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_feature_grad_mult_scales_cnn_gradient():
    torch.manual_seed(0)
    grads = {}
    reference_state = None  # the first model's weights, given to the second
    for mult in (1.0, 0.1):
        model = Wav2Vec2ForPretraining.from_preset("tiny", feature_grad_mult=mult, dropout=0.0, dropout_input=0.0,
                                                   dropout_features=0.0, attention_dropout=0.0)
        torch.manual_seed(0)
        if reference_state is None:
            reference_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            model.load_state_dict(reference_state)
        model.train()
        waveforms = torch.randn(1, 8000, generator=torch.Generator().manual_seed(5))
        mask = compute_span_mask(1, model.config.num_frames(8000), 0.65, 10, generator=torch.Generator().manual_seed(6))
        negatives = sample_negative_indices(mask, 20, generator=torch.Generator().manual_seed(7))
        torch.manual_seed(8)
        out = model(waveforms, mask=mask, negative_indices=negatives)
        # Only the contrastive term: the feature penalty's gradient is not scaled by GradMultiply.
        out.contrastive_loss.backward()
        grads[mult] = model.backbone.feature_extractor.conv_layers[-1].conv.weight.grad.clone()
    ratio = grads[0.1].norm() / grads[1.0].norm()
    assert ratio.item() == pytest.approx(0.1, rel=1e-3)


def test_compiled_pieces_give_the_same_losses_and_keep_state_dict_keys():
    eager = Wav2Vec2ForPretraining(tiny_config()).eval()
    compiled = Wav2Vec2ForPretraining(tiny_config()).eval()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_pieces()
    assert sorted(compiled.state_dict()) == sorted(eager.state_dict())
    generator = torch.Generator().manual_seed(1)
    waveforms = torch.randn(2, 16000, generator=generator)
    mask = compute_span_mask(2, eager.config.num_frames(16000), 0.65, 10, generator=generator)
    negatives = sample_negative_indices(mask, eager.objective.num_negatives, generator=generator)
    with torch.no_grad():
        a = eager(waveforms, mask=mask, negative_indices=negatives)
        b = compiled(waveforms, mask=mask, negative_indices=negatives)
    torch.testing.assert_close(b.loss, a.loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.contrastive_loss, a.contrastive_loss, rtol=1e-5, atol=1e-5)
    finite = torch.isfinite(a.logits) & mask[..., None]
    torch.testing.assert_close(b.logits[finite], a.logits[finite], rtol=1e-5, atol=1e-5)
