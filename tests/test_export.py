"""Export to transformers / torchaudio: round trips give the same hidden states and logits."""
from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from lightning_w2v.checkpoints.export import (  # noqa: E402
    export_to_transformers,
    export_torchaudio_state_dict,
    load_exported,
)
from lightning_w2v.commands import main  # noqa: E402
from lightning_w2v.encoders import load_pretraining_model  # noqa: E402
from lightning_w2v.models import Wav2Vec2ForPretraining  # noqa: E402

ATOL = 1e-5


@pytest.fixture(scope="module")
def ours():
    """A tiny model whose every weight differs from a fresh init (so nothing passes by luck)."""
    torch.manual_seed(3)
    model = Wav2Vec2ForPretraining.from_preset("tiny", num_negatives=12)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.set_temperature(1.25)
    return model.eval()


@pytest.fixture(scope="module")
def exported(ours, tmp_path_factory):
    return export_to_transformers(ours, tmp_path_factory.mktemp("hf") / "tiny")


def _hf_logits(hf, out, negatives, temperature):
    """transformers' logits (B, T, K+1) rebuilt from its projected states, as its forward does."""
    batch, frames, num_neg = negatives.shape
    quantized = out.projected_quantized_states  # (B, T, F)
    flat = quantized.reshape(batch * frames, -1)
    offsets = (torch.arange(batch) * frames)[:, None, None]
    neg = flat[(negatives + offsets).reshape(-1)].view(batch, frames, num_neg, -1).permute(2, 0, 1, 3)
    logits = hf.compute_contrastive_logits(quantized[None], neg, out.projected_states, temperature)
    neg_is_pos = (quantized == neg).all(-1)
    logits[1:][neg_is_pos] = float("-inf")
    return logits.permute(1, 2, 0)


def test_directory_has_config_and_safetensors(exported, ours):
    assert (exported / "config.json").is_file() and (exported / "model.safetensors").is_file()
    cfg = json.loads((exported / "config.json").read_text())
    assert cfg["architectures"] == ["Wav2Vec2ForPreTraining"]
    assert cfg["hidden_size"] == ours.config.embed_dim and cfg["num_hidden_layers"] == ours.config.num_layers
    pre = json.loads((exported / "preprocessor_config.json").read_text())
    assert pre["sampling_rate"] == 16000 and pre["do_normalize"] is False


@pytest.mark.parametrize("cls_name", ["Wav2Vec2ForPreTraining", "Wav2Vec2Model"])
def test_from_pretrained_gives_our_hidden_states(exported, ours, cls_name):
    hf, info = getattr(transformers, cls_name).from_pretrained(str(exported), output_loading_info=True)
    assert info["missing_keys"] == [] or info["missing_keys"] == set()  # nothing left at random init
    if cls_name == "Wav2Vec2ForPreTraining":
        assert not info["unexpected_keys"]
    encoder = getattr(hf.eval(), "wav2vec2", hf)
    waveforms = torch.randn(2, 12000)
    with torch.no_grad():
        mine = ours.backbone(waveforms, output_hidden_states=True)
        ref = encoder(waveforms, output_hidden_states=True)
    assert len(mine.hidden_states) == len(ref.hidden_states) == ours.config.num_layers + 1
    for a, b in zip(mine.hidden_states, ref.hidden_states):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(mine.last_hidden_state, ref.last_hidden_state, atol=ATOL, rtol=0)


def test_pretraining_logits_match_after_export(exported, ours, fixed_inputs):
    hf = transformers.Wav2Vec2ForPreTraining.from_pretrained(str(exported)).eval()
    torch.testing.assert_close(hf.wav2vec2.masked_spec_embed, ours.mask_emb, atol=0, rtol=0)
    waveforms, mask, negatives = fixed_inputs(ours)
    offsets = (torch.arange(mask.shape[0]) * mask.shape[1])[:, None, None]
    with torch.no_grad():
        out = ours(waveforms, mask=mask, negative_indices=negatives)
        ref = hf(waveforms, mask_time_indices=mask, sampled_negative_indices=negatives + offsets)
        ref_logits = _hf_logits(hf, ref, negatives, ours.objective.logit_temperature)
    a, b = out.logits[mask], ref_logits[mask]
    finite = torch.isfinite(b)
    assert torch.equal(finite, torch.isfinite(a))
    torch.testing.assert_close(a[finite], b[finite], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.contrastive_loss, ref.contrastive_loss, atol=1e-3, rtol=1e-5)


def test_round_trip_back_to_ours_is_exact(exported, ours, fixed_inputs):
    back = load_exported(exported)
    assert isinstance(back, Wav2Vec2ForPretraining) and not back.training
    assert back.config == ours.config  # fields transformers has no name for come back too
    assert float(back.quantizer.temperature) == pytest.approx(1.25)
    theirs, mine = back.state_dict(), ours.state_dict()
    assert theirs.keys() == mine.keys()
    for k in mine:
        torch.testing.assert_close(theirs[k], mine[k], atol=0, rtol=0, msg=k)
    waveforms, mask, negatives = fixed_inputs(ours, seed=5)
    with torch.no_grad():
        a = ours(waveforms, mask=mask, negative_indices=negatives).logits
        b = back(waveforms, mask=mask, negative_indices=negatives).logits
    torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("legacy", [False, True])
def test_torchaudio_state_dict_loads_strictly(tmp_path, ours, legacy):
    import torchaudio

    from lightning_w2v.models.backbone import torchaudio_kwargs

    path = export_torchaudio_state_dict(ours, tmp_path / "w2v.pt", legacy_weight_norm=legacy)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert any(k.endswith("weight_g") for k in state) == legacy
    kwargs = json.loads((tmp_path / "w2v.pt.json").read_text())
    for built in (torchaudio.models.wav2vec2_model(**kwargs),
                  torchaudio.models.wav2vec2_model(**torchaudio_kwargs(ours.config), aux_num_out=None)):
        built.load_state_dict(state, strict=True)
        built.eval()
        waveforms = torch.randn(2, 9000)
        with torch.no_grad():
            theirs, _ = built(waveforms)
            mine = ours.backbone(waveforms).last_hidden_state
        torch.testing.assert_close(theirs, mine, atol=ATOL, rtol=0)


def test_cli_exports_a_training_checkpoint(tiny_pretrain_ckpt, tmp_path):
    out, ta = tmp_path / "hf", tmp_path / "ta.pt"
    assert main(["export", "--ckpt", str(tiny_pretrain_ckpt), "--to", str(out), "--torchaudio", str(ta)]) == 0
    ours = load_pretraining_model(tiny_pretrain_ckpt)
    back = load_exported(out)
    for k, v in ours.state_dict().items():
        torch.testing.assert_close(back.state_dict()[k], v, atol=0, rtol=0, msg=k)
    hf = transformers.Wav2Vec2Model.from_pretrained(str(out)).eval()
    waveforms = torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(hf(waveforms).last_hidden_state,
                                   ours.backbone(waveforms).last_hidden_state, atol=ATOL, rtol=0)
    assert ta.is_file()


def test_encoder_only_checkpoint_exports_a_wav2vec2_model(tmp_path, ours):
    """A checkpoint without the pre-training head (e.g. fine-tuning) gives a Wav2Vec2Model."""
    ckpt = tmp_path / "enc.ckpt"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in ours.backbone.state_dict().items()},
                "wav2vec2_config": ours.config.to_dict()}, ckpt)
    out = export_to_transformers(str(ckpt), tmp_path / "enc")
    assert json.loads((out / "config.json").read_text())["architectures"] == ["Wav2Vec2Model"]
    hf = transformers.Wav2Vec2Model.from_pretrained(str(out)).eval()
    waveforms = torch.randn(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(hf(waveforms).last_hidden_state,
                                   ours.backbone(waveforms).last_hidden_state, atol=ATOL, rtol=0)
