"""Checkpoints written by 0.1 (``tests/fixtures/v0_1``) still load, and give what 0.1 computed."""
from __future__ import annotations

from pathlib import Path

import torch

from lightning_w2v.checkpoints import read_checkpoint
from lightning_w2v.encoders.sources.checkpoint import backbone_from_checkpoint, load_pretraining_model
from lightning_w2v.tasks import FinetuneModule

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v0_1"
EXPECTED = torch.load(FIXTURES / "expected_outputs.pt", weights_only=True)


def test_the_reader_tells_the_kinds_of_unstamped_checkpoints():
    pretrain = read_checkpoint(FIXTURES / "pretrain_tiny.ckpt")
    finetune = read_checkpoint(FIXTURES / "finetune_tiny_fe.ckpt")
    assert (pretrain.kind, finetune.kind) == ("pretrain", "finetune")
    assert (finetune.task, finetune.policy) == ("pitch", "FE")
    assert pretrain.config().num_layers == finetune.config().num_layers == 2


def test_a_0_1_pretraining_checkpoint_gives_the_same_encoder_output_and_codes():
    waveforms = EXPECTED["waveforms"]
    backbone = backbone_from_checkpoint(FIXTURES / "pretrain_tiny.ckpt").eval()
    model = load_pretraining_model(FIXTURES / "pretrain_tiny.ckpt")
    with torch.no_grad():
        torch.testing.assert_close(backbone(waveforms).last_hidden_state, EXPECTED["pretrain_last_hidden_state"],
                                   atol=1e-5, rtol=1e-5)
        codes, _ = model.quantize(waveforms)
    assert torch.equal(codes, EXPECTED["pretrain_codes"])


def test_a_0_1_finetuning_checkpoint_gives_the_same_logits():
    encoder = {"source": "checkpoint", "path": str(FIXTURES / "pretrain_tiny.ckpt")}  # as 0.1 stored it
    module = FinetuneModule.load_from_checkpoint(FIXTURES / "finetune_tiny_fe.ckpt", encoder=encoder).eval()
    with torch.no_grad():
        torch.testing.assert_close(module(EXPECTED["waveforms"]), EXPECTED["finetune_logits"], atol=1e-5, rtol=1e-5)
