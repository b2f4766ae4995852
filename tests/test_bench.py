"""The pre-training benchmark: FLOP count by hand and end-to-end CLI runs on the tiny preset."""
from __future__ import annotations

import json
import math

import pytest
import torch

from lightning_w2v.commands import main
from lightning_w2v.models import PretrainingObjective, Wav2Vec2Config, Wav2Vec2ForPretraining, base_config
from lightning_w2v.workflows.bench import peak_flops_for, pretraining_flops

FIELDS = [
    "device", "device_name", "torch_version", "preset", "precision", "compile", "batch_size",
    "crop_seconds", "steps", "step_time_s_median", "steps_per_s", "audio_seconds_per_s",
    "model_flops_per_step", "mfu", "peak_memory_bytes", "time_share",
    "loader_realtime_factor_per_worker", "transformers",
]
SHARES = ["cnn", "transformer", "quantizer_loss", "masking_negatives"]


def _micro_config() -> Wav2Vec2Config:
    return Wav2Vec2Config(
        conv_layers=[(4, 4, 4)], embed_dim=8, num_layers=1, num_heads=2, ffn_dim=16,
        pos_conv_kernel=2, pos_conv_groups=2, num_codevector_groups=1, num_codevectors_per_group=4,
        codevector_dim=4, final_dim=4,
    )


def test_pretraining_flops_matches_hand_count():
    # 32 samples, one conv (4 ch, kernel 4, stride 4) -> T = 8 frames; batch 2.
    flops = pretraining_flops(_micro_config(), num_samples=32, batch=2,
                              objective=PretrainingObjective(num_negatives=3, mask_length=2))
    hand = {
        "cnn": 2 * 1 * 4 * 4 * 8,  # 2 * C_in * k * C_out * T
        "feature_projection": 2 * 4 * 8 * 8,  # one linear layer: 2 * C * E * T
        "pos_conv": 2 * (8 // 2) * 2 * 8 * 8,  # grouped conv: 2 * E/groups * k * E * T
        "transformer": 4 * 2 * 8 * 8 * 8 + 2 * 2 * 8 * 8 * 8 + 2 * 2 * 8 * 16 * 8,  # QKVO + QK^T/AV + FFN
        "quantizer": 2 * 4 * 4 * 8 + 2 * 4 * 4 * 8,  # weight_proj + codevector selection
        "head": 2 * 4 * 4 * 8 + 2 * 8 * 4 * 8 + 2 * (1 + 3) * 4 * 8,  # project_q + final_proj + logits
    }
    for part, value in hand.items():
        assert flops[part] == 2 * value, part
    assert flops["forward"] == 2 * sum(hand.values())
    assert flops["training"] == 3 * flops["forward"]


def test_pretraining_flops_matches_torch_flop_counter_on_cnn_and_projection():
    from torch.utils.flop_counter import FlopCounterMode

    model = Wav2Vec2ForPretraining.from_preset("tiny").eval()
    waveforms = torch.randn(2, 32000)
    flops = pretraining_flops(model.config, 32000, batch=2)
    with FlopCounterMode(display=False) as counter:
        features, _ = model.backbone.extract_features(waveforms)
    assert counter.get_total_flops() == flops["cnn"]
    normed = model.backbone.normalize_features(features)
    with FlopCounterMode(display=False) as counter:
        model.backbone.project(normed)
    assert counter.get_total_flops() == flops["feature_projection"]


def test_base_flops_in_reference_range():
    crop = 249_600  # 15.6 s at 16 kHz
    flops = pretraining_flops(base_config(), crop, batch=1)
    seconds = crop / 16_000
    forward = flops["forward"] / seconds / 1e9
    training = flops["training"] / seconds / 1e9
    assert 14.5 * 0.85 <= forward <= 14.5 * 1.15, forward  # REFERENCE.md: ~14-15 GFLOP/audio-s
    assert 46 * 0.85 <= training <= 46 * 1.15, training  # ~46 GFLOP/audio-s for training
    assert 0.25 <= flops["cnn"] / flops["forward"] <= 0.4  # the CNN is ~1/3 of the forward


def test_peak_flops_table():
    assert peak_flops_for("NVIDIA H100 80GB HBM3", "bf16") == 989e12
    assert peak_flops_for("NVIDIA H200", "bf16") == 989e12
    assert peak_flops_for("NVIDIA A100-SXM4-80GB", "bf16") == 312e12
    assert peak_flops_for("AMD EPYC", "fp32") is None


def _check_result(result: dict, printed: str) -> None:
    assert "steps_per_s" in printed and "share_masking_negatives" in printed
    for name in FIELDS:
        assert name in result, name
    assert result["device"] == "cpu" and result["preset"] == "tiny" and result["precision"] == "fp32"
    for name in ["step_time_s_median", "steps_per_s", "audio_seconds_per_s", "model_flops_per_step",
                 "peak_memory_bytes", "loader_realtime_factor_per_worker"]:
        assert math.isfinite(result[name]) and result[name] > 0, name
    assert result["mfu"] is None  # CPU peak is unknown
    shares = result["time_share"]
    assert set(shares) == set(SHARES)
    assert all(0.0 <= shares[k] <= 1.0 for k in SHARES), shares
    assert sum(shares.values()) <= 1.05, shares


ARGS = ["--preset", "tiny", "--device", "cpu", "--steps", "20", "--warmup", "2",
        "--batch-size", "2", "--crop-seconds", "2"]


def test_cli_tiny_cpu(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", *ARGS, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    _check_result(result, capsys.readouterr().out)
    assert result["steps"] == 20 and result["batch_size"] == 2
    assert result["transformers"] is None


def test_cli_tiny_cpu_compare_transformers(tmp_path, capsys):
    pytest.importorskip("transformers")
    out = tmp_path / "bench.json"
    args = ARGS + ["--steps", "3", "--warmup", "1", "--share-steps", "1", "--no-loader", "--compare-transformers"]
    assert main(["bench", *args, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "transformers_ratio" in printed
    hf = result["transformers"]
    for name in ["step_time_s_median", "audio_seconds_per_s", "ratio"]:
        assert math.isfinite(hf[name]) and hf[name] > 0, name
    assert result["loader_realtime_factor_per_worker"] is None
