"""Continued pre-training from an existing model (issue: research workflows)."""
from __future__ import annotations

import logging

import pytest
import torch

from lightning_w2v import PretrainModule
from lightning_w2v.encoders import EncoderSpec
from lightning_w2v.models import tiny_config
from lightning_w2v.models.interop import config_to_huggingface

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_encoder_dir(tmp_path_factory):
    """A transformers Wav2Vec2Model (an exported encoder: no quantizer), saved locally."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hf_encoder")
    transformers.Wav2Vec2Model(config_to_huggingface(tiny_config())).save_pretrained(path)
    return path


def test_encoder_without_quantizer_gets_a_fresh_one_with_a_warning(hf_encoder_dir, caplog):
    hf = transformers.Wav2Vec2Model.from_pretrained(hf_encoder_dir).eval()
    with caplog.at_level(logging.WARNING):
        module = PretrainModule(init_from=EncoderSpec(source="huggingface", path=str(hf_encoder_dir)))
    assert "has no quantizer" in caplog.text
    waveforms = torch.randn(2, 16000)
    with torch.no_grad():
        ours = module.model.backbone.eval()(waveforms).last_hidden_state
        torch.testing.assert_close(ours, hf(waveforms).last_hidden_state, atol=1e-5, rtol=1e-5)
    assert module.model.quantizer.codevectors.shape == (1, 2 * 32, 32)


def test_continued_pretraining_loss_decreases_on_demo_audio(hf_encoder_dir, demo_root):
    from lightning_w2v.data.audio import read_audio, resample

    torch.manual_seed(0)
    module = PretrainModule(init_from=EncoderSpec(source="huggingface", path=str(hf_encoder_dir)))
    model = module.model.train()
    wav = sorted((demo_root / "musicnet").rglob("train_data/*.wav"))[0]
    wave, sr = read_audio(wav)
    wave = torch.from_numpy(resample(wave, sr, 16000))
    batch = torch.stack([wave[i * 32000:(i + 1) * 32000] for i in range(4)])  # (4, 32000)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        out = model(batch)
        loss = out.loss / out.num_masked
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)


def test_architecture_overrides_are_refused_when_continuing(hf_encoder_dir):
    with pytest.raises(ValueError, match="change the architecture"):
        PretrainModule(init_from=EncoderSpec(source="huggingface", path=str(hf_encoder_dir)),
                       model_overrides={"num_layers": 4})


def test_full_state_needs_our_checkpoint(hf_encoder_dir):
    with pytest.raises(ValueError, match="full-state needs"):
        PretrainModule(init_from=EncoderSpec(source="huggingface", path=str(hf_encoder_dir)), init_mode="full-state")


def test_weights_only_from_our_checkpoint_keeps_the_quantizer(tiny_pretrain_ckpt):
    module = PretrainModule(init_from=EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt)))
    state = torch.load(tiny_pretrain_ckpt, weights_only=False)["state_dict"]
    torch.testing.assert_close(module.model.quantizer.codevectors, state["model.quantizer.codevectors"])
