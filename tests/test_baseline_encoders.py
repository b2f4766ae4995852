"""CREPE and PESTO, real pre-trained weights from their PyPI packages, as encoder sources.

Each is checked against its own package on the same audio, then used where every encoder is:
FE and FT1 fine-tuning through the CLI, the results table, HEAR and the probe table.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from lightning_w2v import hear
from lightning_w2v.commands import main
from lightning_w2v.encoders import EncoderSpec, load_encoder
from lightning_w2v.errors import ConfigError

torchcrepe = pytest.importorskip("torchcrepe", reason="the [baselines] extra (installed by [test])")
pesto = pytest.importorskip("pesto", reason="the [baselines] extra (installed by [test])")

SR = 16_000


def harmonic_tone(frequency: float, seconds: float = 0.5, partials: int = 6) -> torch.Tensor:
    """(1, S) a tone of ``partials`` harmonics with 1/k amplitudes, at 16 kHz."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    wave = sum(torch.sin(2 * math.pi * k * frequency * t) / k for k in range(1, partials + 1))
    return (0.3 * wave / wave.abs().max()).float()[None]


def cents(f: torch.Tensor, reference: float) -> torch.Tensor:
    return (1200 * torch.log2(f / reference)).abs()


@pytest.fixture(scope="module", params=["tiny", "full"])
def crepe(request):
    return request.param, load_encoder(EncoderSpec(source="torchcrepe", path=request.param)).eval()


@pytest.mark.parametrize("frequency", [220.0, 440.0])
def test_crepe_f0_of_a_harmonic_tone_is_within_10_cents_from_both(crepe, frequency):
    capacity, encoder = crepe
    tone = harmonic_tone(frequency)
    with torch.no_grad():
        ours = encoder.f0(tone)[0, 5:-5]  # frames whose window lies inside the tone
        theirs = torchcrepe.predict(tone, SR, hop_length=160, model=capacity,
                                    decoder=torchcrepe.decode.weighted_argmax, device="cpu")[0, 5:-5]
    assert cents(ours.median(), frequency) < 10, ours.median()
    assert cents(theirs.median(), frequency) < 10, theirs.median()
    assert ours.shape == theirs.shape


def test_crepe_embedding_equals_torchcrepe_embed_on_the_same_frames(crepe):
    capacity, encoder = crepe
    audio = torch.randn(1, 4000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = encoder(audio, output_hidden_states=True).hidden_states[1]  # conv block 5
        theirs = torchcrepe.embed(audio, SR, hop_length=160, model=capacity, device="cpu")  # (1, T, 32, -1)
    assert ours.shape == (1, 1 + 4000 // 160, encoder.hidden_sizes[1])
    torch.testing.assert_close(ours, theirs.reshape(1, theirs.shape[1], -1), rtol=1e-5, atol=1e-5)


def test_crepe_frames_hidden_states_and_probabilities():
    encoder = load_encoder(EncoderSpec(source="torchcrepe", path="tiny", hop_ms=20)).eval()
    assert encoder.hop_samples == 320 and encoder.frame_rate == 50.0
    assert encoder.hidden_sizes == (256, 256, 256) and encoder.num_frames(16000) == 51
    audio = harmonic_tone(330.0)
    with torch.no_grad():
        out = encoder(audio, output_hidden_states=True)
        probabilities = encoder.pitch_probabilities(audio)
        theirs = torchcrepe.infer(torchcrepe.core.preprocess(audio, SR, 320).__next__(), "tiny")
    assert len(out.hidden_states) == 3 and out.last_hidden_state is out.hidden_states[-1]
    torch.testing.assert_close(probabilities[0], theirs, rtol=1e-5, atol=1e-6)  # CREPE's own 360 bins
    # frames run in pieces without gradients give what one piece gives
    encoder.frames_per_forward = 7
    with torch.no_grad():
        torch.testing.assert_close(encoder(audio).last_hidden_state, out.last_hidden_state)


def test_pesto_pitch_and_activations_equal_pesto_predict():
    encoder = load_encoder(EncoderSpec(source="pesto")).eval()  # mir-1k_g7, 10 ms
    tone = torch.cat([harmonic_tone(196.0, 0.6), harmonic_tone(523.25, 0.6)], dim=1)[0]
    with torch.no_grad():
        _, preds, _, activations = pesto.predict(tone, SR, step_size=10.0, model_name="mir-1k_g7",
                                                 convert_to_freq=False)
        ours = encoder(tone[None], output_hidden_states=True)
        pitch = encoder.pitch(tone[None])[0]
    assert ours.last_hidden_state.shape[1] == encoder.num_frames(len(tone)) == activations.shape[0]
    torch.testing.assert_close(ours.last_hidden_state[0], activations, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pitch, preds, rtol=0, atol=1e-4)
    midi = pitch[10:50].median()
    assert abs(midi - 55.0) < 0.15  # G3 = 196 Hz: PESTO hears it
    assert [h.shape[-1] for h in ours.hidden_states] == list(encoder.hidden_sizes) == [8760, 657, 384]


def test_a_policy_or_head_that_cannot_apply_is_refused_by_name(tmp_path):
    from lightning_w2v import FinetuneModule

    with pytest.raises(ConfigError, match="policy='FT2'.*CREPE tiny encoder: it has no separate CNN feature encoder"):
        FinetuneModule(EncoderSpec(source="torchcrepe", path="tiny"), task="pitch", policy="FT2")
    with pytest.raises(ConfigError, match="differ in width"):
        FinetuneModule(EncoderSpec(source="pesto"), task="pitch", policy="FE", layer="weighted")
    with pytest.raises(ConfigError, match="ships the CREPE models full and tiny"):
        EncoderSpec(source="torchcrepe", path="large")
    with pytest.raises(ConfigError, match="hop_ms.*does not apply"):
        EncoderSpec(source="random", preset="tiny", hop_ms=20)
    module = FinetuneModule(EncoderSpec(source="torchcrepe", path="tiny"), task="pitch", policy="FT1")
    assert all(p.requires_grad for p in module.encoder.parameters())  # FT1: CREPE trains


def _fit(args: list[str]) -> int:
    return main(["fit", "--config", "finetune/demo_pitch", *args, "--trainer.max_epochs=2",
                 "--data.init_args.subset=1", "--trainer.enable_progress_bar=false"])


@pytest.mark.slow
@pytest.mark.parametrize("source, path", [("torchcrepe", "tiny"), ("pesto", "mir-1k_g7")])
def test_fe_fit_and_test_through_the_cli_and_a_results_row(demo_root, tmp_path, source, path, capsys):
    run = tmp_path / source
    assert _fit(["--config", "finetune/policy/fe", f"--model.init_args.encoder.source={source}",
                 f"--model.init_args.encoder.path={path}", "--model.init_args.encoder.hop_ms=40",
                 f"--data.init_args.root={demo_root / 'nsynth'}", f"--trainer.default_root_dir={run}",
                 "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=2"]) == 0
    summary = json.loads((run / "test_metrics.json").read_text())
    label = "CREPE tiny" if source == "torchcrepe" else "PESTO mir-1k_g7"
    assert summary["encoder"] == label and summary["policy"] == "FE" and summary["task"] == "pitch"
    assert 0.0 <= summary["metrics"]["test/acc"] <= 1.0
    capsys.readouterr()
    assert main(["results", str(run)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith(f"| {label} FE |"))
    assert f"{100 * summary['metrics']['test/acc']:.1f}" in row
    if source == "torchcrepe":
        assert "90.0 (CREPE full)" in row  # the paper's CREPE beside ours


@pytest.mark.slow
def test_ft1_trains_crepe_and_ft2_is_refused_through_the_cli(demo_root, tmp_path):
    common = ["--model.init_args.encoder.source=torchcrepe", "--model.init_args.encoder.path=tiny",
              "--model.init_args.encoder.hop_ms=100", f"--data.init_args.root={demo_root / 'nsynth'}",
              "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1"]
    assert _fit(["--config", "finetune/policy/ft1", *common, f"--trainer.default_root_dir={tmp_path / 'ft1'}"]) == 0
    assert json.loads((tmp_path / "ft1" / "test_metrics.json").read_text())["policy"] == "FT1"
    assert _fit(["--config", "finetune/policy/ft2", *common, f"--trainer.default_root_dir={tmp_path / 'ft2'}"]) == 2
    assert not (tmp_path / "ft2").exists()  # refused before anything was written


def test_hear_loads_crepe_and_places_its_frames_on_their_centres():
    model = hear.load_model("torchcrepe:tiny")
    audio = torch.randn(2, 8000)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 1 + 8000 // 160, 256) and model.sample_rate == SR
    torch.testing.assert_close(timestamps[0, :3], torch.tensor([0.0, 10.0, 20.0]))  # frame t centred on t * hop
    assert hear.get_scene_embeddings(audio, model).shape == (2, model.scene_embedding_size)


def test_probe_table_of_crepe(demo_root, tmp_path, capsys):
    assert main(["probe", "--nsynth", str(demo_root / "nsynth"), "--source", "torchcrepe", "--ckpt", "tiny",
                 "--hop-ms", "50", "--per-class", "1", "--out", str(tmp_path / "probe")]) == 0
    table = (tmp_path / "probe" / "probe_table.md").read_text()
    assert "| CREPE tiny | layer_2 |" in table and "log-mel statistics" in table and "untrained" not in table
