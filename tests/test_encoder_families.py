"""Encoders of the wav2vec 2.0 family, loaded exactly (every hidden state) or refused by name.

Small random models are built locally from transformers configs (no download), saved with
``save_pretrained`` and loaded through ``EncoderSpec(source="huggingface")``. The reference is
transformers itself, fed the way its own feature extractor prepares audio: resampled to the
model's rate and normalised per clip where the checkpoint's ``preprocessor_config.json`` says so.
Our side always gets the 16 kHz audio the data modules give.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchaudio
import transformers
from safetensors.torch import load_file, save_file
from torchaudio.pipelines._wav2vec2 import utils as bundle_utils

from lightning_w2v.encoders import EncoderSpec, load_encoder
from lightning_w2v.encoders.sources.torchaudio_bundle import torchaudio_bundle
from lightning_w2v.errors import CheckpointError, ConfigError
from lightning_w2v.models import interop
from lightning_w2v.models.backbone import torchaudio_kwargs

SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
         "conv_dim": (32,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2),
         "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}
PRE_LN = {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}
LENGTHS = (16001, 11007)  # an odd length, and a second row padded to it
MERT_PREPROCESSOR = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                     "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True,
                     "sampling_rate": 24000}


def _config(family: str, **extra):
    if family == "Data2VecAudio":  # its num_conv_pos_embeddings counts convs (5 of kernel 19), not a width
        extra = {"num_conv_pos_embeddings": 5, "conv_pos_kernel_size": 19, **extra}
    return getattr(transformers, f"{family}Config")(**{**SMALL, **extra})


def _saved_model(family: str, path, **extra) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    model = getattr(transformers, f"{family}Model")(_config(family, **extra)).eval()
    if family == "WavLM":  # a trained WavLM's position bias is large; at init it is ~0.02 and easy to lose
        with torch.no_grad():
            model.encoder.layers[0].attention.rel_attn_embed.weight.mul_(50.0)
    model.save_pretrained(path)
    return model, str(path)


def _save_extractor(path, sampling_rate: int = 16000, do_normalize: bool = True) -> None:
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=sampling_rate, do_normalize=do_normalize,
                                          return_attention_mask=True).save_pretrained(path)


def _as_mert(path) -> None:
    """Rewrite a saved HubertModel as MERT-v1 ships: custom-code config, 24 kHz, normalising, and
    a pytorch_model.bin with the weight-norm names of older transformers."""
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="mert_model", architectures=["MERTModel"], sample_rate=24000,
                  auto_map={"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
                  feature_extractor_cqt=False, feature_extractor_cqt_bins=336, deepnorm=False, attention_relax=-1.0,
                  feat_proj_layer_norm=True)
    (path / "config.json").write_text(json.dumps(config))
    weights = load_file(path / "model.safetensors")
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v"): v for k, v in weights.items()}
    assert any(k.endswith("weight_g") for k in renamed)
    torch.save(renamed, path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    (path / "preprocessor_config.json").write_text(json.dumps(MERT_PREPROCESSOR))


def _audio(padded: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (LENGTHS if padded else LENGTHS[:1])]


def _reference(model, clips: list[np.ndarray], sample_rate: int, do_normalize: bool):
    """transformers' hidden states for clips at 16 kHz, prepared as its feature extractor prepares them."""
    if sample_rate != 16000:
        clips = [torchaudio.functional.resample(torch.from_numpy(c), 16000, sample_rate).numpy() for c in clips]
    extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=sample_rate, do_normalize=do_normalize,
                                                      return_attention_mask=True)
    inputs = extractor(clips, sampling_rate=sample_rate, padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model(inputs.input_values, attention_mask=inputs.attention_mask, output_hidden_states=True)
    lengths = torch.tensor([len(c) for c in clips])
    # The last hidden state of a pre-LN model is read after its final LayerNorm, i.e. it is
    # last_hidden_state (transformers 5 records the last layer's output before that LayerNorm).
    return (*output.hidden_states[:-1], output.last_hidden_state), model._get_feat_extract_output_lengths(lengths)


def _ours(path: str, clips: list[np.ndarray]):
    ours = load_encoder(EncoderSpec(source="huggingface", path=path)).eval()
    waveforms = torch.zeros(len(clips), max(len(c) for c in clips))
    for row, clip in enumerate(clips):
        waveforms[row, :len(clip)] = torch.from_numpy(clip)
    lengths = torch.tensor([len(c) for c in clips])
    with torch.no_grad():
        return ours, ours(waveforms, lengths, output_hidden_states=True).hidden_states


def _assert_hidden_states_match(mine, theirs, frames: torch.Tensor) -> None:
    assert len(mine) == len(theirs)
    for index, (a, b) in enumerate(zip(mine, theirs)):
        assert a.shape[1] == b.shape[1], f"hidden state {index}: {a.shape[1]} frames vs {b.shape[1]}"
        for row, valid in enumerate(frames.tolist()):  # padded frames carry no meaning in either
            torch.testing.assert_close(a[row, :valid], b[row, :valid], atol=1e-4, rtol=1e-4,
                                       msg=lambda m, i=index: f"hidden state {i}: {m}")


FAMILIES = {  # id: (transformers family, config extras, preprocessor (sampling_rate, do_normalize) or None)
    "hubert post-LN": ("Hubert", {}, None),
    "hubert pre-LN, normalising": ("Hubert", PRE_LN, (16000, True)),
    "wavlm post-LN": ("WavLM", {}, None),
    "wavlm pre-LN, normalising": ("WavLM", PRE_LN, (16000, True)),
    "data2vec-audio": ("Data2VecAudio", {}, None),
    "wav2vec2 pre-LN, normalising (large-lv60 style)": ("Wav2Vec2", PRE_LN, (16000, True)),
}


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("case", list(FAMILIES))
def test_every_family_matches_transformers_at_every_hidden_state(tmp_path, case, padded):
    family, extra, preprocessor = FAMILIES[case]
    reference, path = _saved_model(family, tmp_path / "model", **extra)
    if preprocessor:
        _save_extractor(tmp_path / "model", *preprocessor)
    clips = _audio(padded)
    theirs, frames = _reference(reference, clips, 16000, bool(preprocessor and preprocessor[1]))
    ours, mine = _ours(path, clips)
    assert ours.config.normalize_waveform == bool(preprocessor and preprocessor[1])
    assert len(mine) == reference.config.num_hidden_layers + 1
    _assert_hidden_states_match(mine, theirs, frames)


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_a_mert_checkpoint_loads_without_its_code_and_matches_hubert_at_24_khz(tmp_path, padded):
    reference, path = _saved_model("Hubert", tmp_path / "MERT-v1-small")
    _as_mert(tmp_path / "MERT-v1-small")
    clips = _audio(padded)
    theirs, frames = _reference(reference, clips, 24000, do_normalize=True)
    ours, mine = _ours(path, clips)
    assert (ours.config.sample_rate, ours.config.normalize_waveform) == (24000, True)
    assert ours.config.num_frames(LENGTHS[0]) == frames[0]  # 16 kHz samples -> 24 kHz frames
    _assert_hidden_states_match(mine, theirs, frames)


@pytest.mark.parametrize("setting", ["feature_extractor_cqt", "deepnorm"])
def test_mert_settings_that_change_the_computation_are_refused_by_name(tmp_path, setting):
    _, path = _saved_model("Hubert", tmp_path / "mert")
    _as_mert(tmp_path / "mert")
    config = json.loads((tmp_path / "mert" / "config.json").read_text())
    config[setting] = True
    (tmp_path / "mert" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"{setting}=True"):
        load_encoder(EncoderSpec(source="huggingface", path=path))


def test_a_mert_weight_that_does_not_map_is_refused_naming_it(tmp_path):
    _, path = _saved_model("Hubert", tmp_path / "mert")
    _as_mert(tmp_path / "mert")
    weights = torch.load(tmp_path / "mert" / "pytorch_model.bin")
    weights["encoder.layers.0.attention.relax_scale"] = torch.ones(4)
    torch.save(weights, tmp_path / "mert" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="unexpected encoder.layers.0.attention.relax_scale"):
        load_encoder(EncoderSpec(source="huggingface", path=path))


def test_a_checkpoint_with_a_missing_weight_is_refused_naming_it(tmp_path):
    _, path = _saved_model("WavLM", tmp_path / "wavlm")
    weights_file = tmp_path / "wavlm" / "model.safetensors"
    weights = load_file(weights_file)
    dropped = "encoder.layers.1.attention.k_proj.weight"
    del weights[dropped]
    save_file(weights, weights_file, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=f"missing {dropped}"):
        load_encoder(EncoderSpec(source="huggingface", path=path))


def test_an_unsupported_family_is_refused_by_name(tmp_path):
    torch.manual_seed(0)
    transformers.UniSpeechSatModel(transformers.UniSpeechSatConfig(**SMALL)).save_pretrained(tmp_path / "u")
    with pytest.raises(CheckpointError, match="'unispeech-sat'"):
        load_encoder(EncoderSpec(source="huggingface", path=str(tmp_path / "u")))


# torchaudio bundles: the architecture of each is read from its _params; a random model of the
# same structure (shrunk, no download) is compared with torchaudio's own forward.
BUNDLES = ["HUBERT_BASE", "HUBERT_LARGE", "HUBERT_XLARGE", "WAVLM_BASE", "WAVLM_BASE_PLUS", "WAVLM_LARGE",
           "WAV2VEC2_XLSR53", "WAV2VEC2_XLSR_300M", "WAV2VEC2_XLSR_1B", "WAV2VEC2_XLSR_2B", "WAV2VEC2_LARGE_LV60K"]
SHRUNK = {"extractor_conv_layer_config": [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2,
          "encoder_embed_dim": 64, "encoder_num_layers": 2, "encoder_num_heads": 4, "encoder_ff_interm_features": 128,
          "encoder_pos_conv_kernel": 16, "encoder_pos_conv_groups": 4}


@pytest.mark.parametrize("name", BUNDLES)
def test_torchaudio_bundle_architecture_and_input_convention(name):
    bundle = torchaudio_bundle(name)
    backbone_config = interop.config_from_torchaudio(bundle._params, bundle.sample_rate, bundle._normalize_waveform)
    kwargs = torchaudio_kwargs(backbone_config)
    expected = {k: v for k, v in bundle._params.items() if k in kwargs and "dropout" not in k}
    assert {k: kwargs[k] for k in expected} == {k: (list(map(tuple, v)) if k == "extractor_conv_layer_config" else v)
                                                for k, v in expected.items()}
    assert (backbone_config.family == "wavlm") == name.startswith("WAVLM")
    assert backbone_config.normalize_waveform == bundle._normalize_waveform


@pytest.mark.parametrize("name", ["HUBERT_BASE", "HUBERT_LARGE", "WAVLM_BASE_PLUS", "WAVLM_LARGE",
                                  "WAV2VEC2_XLSR_300M"])
def test_a_bundles_structure_matches_torchaudios_forward(name):
    bundle = torchaudio_bundle(name)
    params = {**bundle._params, **SHRUNK}
    torch.manual_seed(0)
    model = bundle_utils._get_model(bundle._model_type, params)
    if bundle._normalize_waveform:
        model = bundle_utils._extend_model(model, normalize_waveform=True)
    model.eval()
    ours = interop.backbone_from_torchaudio(model, params, bundle.sample_rate, bundle._normalize_waveform).eval()
    waveform = torch.randn(1, 16001) * 0.3 + 0.1
    with torch.no_grad():
        layers, _ = model.extract_features(waveform)  # each layer's output, before any final LayerNorm
        final, _ = model(waveform)
        mine = ours(waveform, output_hidden_states=True).hidden_states[1:]
    for index, (a, b) in enumerate(zip(mine, [*layers[:-1], final])):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=lambda m, i=index: f"layer {i + 1}: {m}")


def test_an_unknown_torchaudio_bundle_is_refused_before_any_download():
    with pytest.raises(ConfigError, match="HUBERT_BASE"):
        load_encoder(EncoderSpec(source="torchaudio", path="HUBERT_TINY"))


# --- everything downstream of the encoder, with every family ------------------------------------
ZOO = ("hubert", "wavlm", "data2vec-audio", "MERT-v1-small")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, str]:
    """A small random saved model per family, named as a user's folders would be."""
    root = tmp_path_factory.mktemp("zoo")
    families = {"hubert": "Hubert", "wavlm": "WavLM", "data2vec-audio": "Data2VecAudio", "MERT-v1-small": "Hubert"}
    paths = {name: _saved_model(family, root / name)[1] for name, family in families.items()}
    _as_mert(root / "MERT-v1-small")
    return paths


def test_hear_gives_a_24_khz_model_its_own_rate_and_its_exact_features(zoo):
    from lightning_w2v import hear

    model = hear.load_model(zoo["MERT-v1-small"])
    assert model.sample_rate == 24000
    reference = transformers.HubertModel.from_pretrained(_hubert_view(zoo["MERT-v1-small"])).eval()
    audio = torch.randn(2, 48000) * 0.3  # 2 s at the model's own rate, as HEAR hands it over
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    inputs = transformers.Wav2Vec2FeatureExtractor(**MERT_PREPROCESSOR)(list(audio.numpy()), sampling_rate=24000,
                                                                         return_tensors="pt")
    with torch.no_grad():
        expected = reference(inputs.input_values).last_hidden_state
    torch.testing.assert_close(embeddings, expected, atol=1e-4, rtol=1e-4)
    assert timestamps[0, 0].item() == pytest.approx(200 / 24)  # centre of the first 400-sample window
    assert torch.diff(timestamps[0]).mean().item() == pytest.approx(320 / 24, rel=1e-5)


def _hubert_view(mert_path: str) -> str:
    """A HubertModel folder holding the MERT folder's weights (for the reference side only)."""
    from pathlib import Path

    folder = Path(mert_path).parent / "hubert-view"
    if not folder.exists():
        folder.mkdir()
        config = json.loads((Path(mert_path) / "config.json").read_text())
        transformers.HubertConfig(**{k: v for k, v in config.items() if k != "model_type"}).save_pretrained(folder)
        (folder / "pytorch_model.bin").symlink_to(Path(mert_path) / "pytorch_model.bin")
    return str(folder)


@pytest.mark.parametrize("name", ["wavlm", "data2vec-audio", "MERT-v1-small"])
def test_a_bf16_fit_step_trains_every_family_end_to_end(zoo, name, tmp_path):
    """FT1 (everything trains) under bf16-mixed autocast: the position bias, the positional convs
    and the 24 kHz resampling all take part, and the loss stays finite."""
    import pytorch_lightning as pl

    from lightning_w2v.tasks.finetune import FinetuneModule

    module = FinetuneModule(EncoderSpec(source="huggingface", path=zoo[name]), task="instrument", policy="FT1",
                            results_dir=str(tmp_path))
    before = {k: v.clone() for k, v in module.encoder.state_dict().items()}
    data = [{"waveforms": torch.randn(16000) * 0.3, "labels": torch.tensor(i % 11)} for i in range(4)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", precision="bf16-mixed", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    changed = [k for k, v in module.encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert any("feature_extractor" in k for k in changed) and any("transformer.layers.1" in k for k in changed)
    if name == "wavlm":
        assert any("rel_attn_embed" in k for k in changed)


def test_fe_fit_and_test_with_every_family_and_a_results_table_by_model(zoo, demo_root, tmp_path, capsys):
    from lightning_w2v.commands import main as commands_main
    from lightning_w2v.runner import run_cli as cli_main
    from lightning_w2v.runner.configs import conf_root

    conf = conf_root()
    runs = []
    for name in ZOO:
        run = tmp_path / "runs" / name
        cli = cli_main(["fit", "--config", str(conf / "finetune" / "demo_instrument.yaml"),
                        "--config", str(conf / "finetune" / "policy" / "fe.yaml"),
                        "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.fast_dev_run=1",
                        f"--data.init_args.root={demo_root / 'nsynth'}", "--data.init_args.num_workers=0",
                        "--data.init_args.batch_size=4", "--model.init_args.encoder.source=huggingface",
                        f"--model.init_args.encoder.path={zoo[name]}", f"--trainer.default_root_dir={run}"])
        assert cli.trainer.state.finished
        summary = json.loads((run / "test_metrics.json").read_text())  # test_after_fit ran the test split
        assert summary["encoder"] == name and 0.0 <= summary["metrics"]["test/acc"] <= 1.0
        runs.append(str(run))
    capsys.readouterr()
    assert commands_main(["results", *runs]) == 0
    table = capsys.readouterr().out
    for name in ZOO:
        assert f"| {name} FE |" in table  # a row per model, under its own name


def test_layer_probes_and_the_weighted_sum_run_on_another_family(zoo, demo_root, tmp_path):
    from lightning_w2v.commands import main as commands_main

    out = tmp_path / "probe"
    assert commands_main(["probe-layers", "--source", "huggingface", "--ckpt", zoo["wavlm"],
                          "--nsynth", str(demo_root / "nsynth"), "--task", "instrument", "--out", str(out),
                          "--layers", "1", "--weighted", "--max-epochs", "1", "--subset", "1",
                          "--override=--trainer.limit_val_batches=1", "--override=--trainer.num_sanity_val_steps=0",
                          "--override=--trainer.enable_progress_bar=false"]) == 0
    rows = (out / "probe_layers.csv").read_text().splitlines()
    assert [row.split(",")[1] for row in rows[1:]] == ["1", "weighted"]
    summary = json.loads((out / "layer_weighted" / "test_metrics.json").read_text())
    assert summary["encoder"] == "wavlm" and summary["encoder_source"] == "huggingface"
    weights = json.loads((out / "layer_weighted" / "layer_weights.json").read_text())
    assert len(weights["weights"]) == 3  # hidden states 0..2 of the 2-layer WavLM


def test_codebook_analysis_of_an_encoder_without_a_quantizer_is_a_clear_error(zoo, demo_root, tmp_path, capsys):
    from lightning_w2v.commands import main as commands_main

    code = commands_main(["analyze", "codebooks", "--ckpt", zoo["MERT-v1-small"], "--nsynth",
                          str(demo_root / "nsynth"), "--out", str(tmp_path / "codebooks")])
    assert code == 2
    assert "quantizer" in capsys.readouterr().err


def test_export_keeps_the_input_convention_and_refuses_other_families(zoo, tmp_path):
    from lightning_w2v.checkpoints.export import export_to_transformers, load_exported

    mert = load_encoder(EncoderSpec(source="huggingface", path=zoo["MERT-v1-small"]))  # HuBERT-shaped: exportable
    out = export_to_transformers(mert, tmp_path / "exported")
    extractor = json.loads((out / "preprocessor_config.json").read_text())
    assert (extractor["sampling_rate"], extractor["do_normalize"]) == (24000, True)
    again = load_encoder(EncoderSpec(source="huggingface", path=str(out)))
    assert (again.config.sample_rate, again.config.normalize_waveform) == (24000, True)
    assert load_exported(out).config.sample_rate == 24000
    wavlm = load_encoder(EncoderSpec(source="huggingface", path=zoo["wavlm"]))
    with pytest.raises(CheckpointError, match="wavlm"):
        export_to_transformers(wavlm, tmp_path / "wavlm_export")


@pytest.mark.parametrize("name", ["wavlm", "data2vec-audio", "MERT-v1-small"])
def test_continued_pretraining_from_every_family_takes_a_bf16_step(zoo, name):
    """A fresh quantizer on top of the family's encoder: masking, the position bias (or stacked
    positional convs) and the 24 kHz resampling inside a bf16-mixed pre-training step."""
    import pytorch_lightning as pl

    from lightning_w2v import PretrainModule

    module = PretrainModule(init_from=EncoderSpec(source="huggingface", path=zoo[name]), warmup_steps=1)
    torch.manual_seed(0)
    data = [{"waveforms": torch.randn(32000) * 0.3} for _ in range(4)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    before = module.model.backbone.encoder.transformer.layers[1].feed_forward.output_dense.weight.clone()
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", precision="bf16-mixed", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert not torch.equal(before, module.model.backbone.encoder.transformer.layers[1].feed_forward.output_dense.weight)


def test_pwcca_compares_our_checkpoint_with_another_family(zoo, tiny_pretrain_ckpt, demo_root, tmp_path):
    import csv

    from lightning_w2v.commands import main as commands_main

    out = tmp_path / "pwcca"
    assert commands_main(["analyze", "pwcca", "--ckpt", str(tiny_pretrain_ckpt), "--source", "checkpoint",
                          "--ckpt", zoo["data2vec-audio"], "--source", "huggingface",
                          "--musicnet", str(demo_root / "musicnet"), "--fraction", "0.5", "--out", str(out)]) == 0
    with open(out / "pwcca.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["model"] for row in rows} == {tiny_pretrain_ckpt.stem, "data2vec-audio"}
    assert all(0.0 <= float(row["pwcca"]) <= 1.0 for row in rows)
    assert sum(row["model"] == "data2vec-audio" for row in rows) == 2  # one value per layer of the 2-layer model
    assert (out / "pwcca.png").is_file()


def test_codebooks_of_a_source_without_a_quantizer_is_refused_before_anything_runs(zoo, demo_root, tmp_path, capsys):
    from lightning_w2v.commands import main as commands_main

    code = commands_main(["analyze", "codebooks", "--ckpt", zoo["wavlm"], "--source", "huggingface",
                          "--nsynth", str(demo_root / "nsynth"), "--out", str(tmp_path / "codebooks")])
    assert code == 2 and "quantizer" in capsys.readouterr().err
    assert not (tmp_path / "codebooks").exists()
