"""Layer-wise probing, label efficiency and the layer-weights logger; layerdrop is off when probing."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from wandb_records import finished_run_records

from lightning_w2v import FinetuneModule
from lightning_w2v.callbacks import LayerWeightsLogger
from lightning_w2v.commands import main as lightning_w2v_main  # the `lightning-w2v` command
from lightning_w2v.encoders import EncoderSpec
from lightning_w2v.models import tiny_config
from lightning_w2v.models.backbone import Wav2Vec2Backbone

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, dropout_input=0.0,
                  dropout_features=0.0)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------- layerdrop
def test_layerdrop_is_off_when_hidden_states_are_read():
    """layerdrop=1.0 drops every layer in training, unless hidden states are read (probing)."""
    torch.manual_seed(0)
    backbone = Wav2Vec2Backbone(tiny_config(layerdrop=1.0, num_layers=3, **NO_DROPOUT))
    waveforms = torch.randn(2, 16000)
    with torch.no_grad():
        train_out = backbone.train()(waveforms, output_hidden_states=True)
        train_last_only = backbone(waveforms).last_hidden_state  # layerdrop applies here
        eval_out = backbone.eval()(waveforms, output_hidden_states=True)
    states = train_out.hidden_states
    assert len(states) == backbone.num_layers + 1 == 4
    for i in range(1, len(states)):  # every layer ran: each output differs from its input
        assert not torch.allclose(states[i], states[i - 1], atol=1e-4), f"layer {i} was skipped"
    for train_state, eval_state in zip(states, eval_out.hidden_states):  # and exactly as in eval mode
        torch.testing.assert_close(train_state, eval_state)
    torch.testing.assert_close(train_out.last_hidden_state, eval_out.last_hidden_state)
    # the control: without reading hidden states, layerdrop=1.0 really skips every layer
    assert not torch.allclose(train_last_only, eval_out.last_hidden_state, atol=1e-4)


def test_finetune_probe_of_a_layer_ignores_layerdrop_in_train_mode(tiny_pretrain_ckpt):
    """An FT1 model (encoder in train mode) reading layer L gives its eval-mode logits despite layerdrop=1."""
    module = FinetuneModule(EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt)), task="pitch",
                            policy="FT1", layer=2)
    backbone = Wav2Vec2Backbone(tiny_config(layerdrop=1.0, **NO_DROPOUT))
    backbone.load_state_dict(module.encoder.state_dict())
    module.encoder = backbone
    waveforms = torch.randn(2, 16000)
    with torch.no_grad():
        train_logits = module.train()(waveforms)
        eval_logits = module.eval()(waveforms)
    assert module.encoder.layerdrop == 1.0
    torch.testing.assert_close(train_logits, eval_logits)


def test_fe_probe_reads_the_requested_hidden_state(tiny_pretrain_ckpt):
    waveforms = torch.randn(3, 16000)
    for layer in (0, 1, 2):
        module = FinetuneModule(EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt)), task="pitch",
                                policy="FE", layer=layer).eval()
        with torch.no_grad():
            states = module.encoder(waveforms, output_hidden_states=True).hidden_states
            expected = module.head.linear(states[layer].mean(dim=1))  # mean over time, then linear
            torch.testing.assert_close(module(waveforms), expected)


# ---------------------------------------------------------------------------- end to end
def test_probe_layers_command_writes_one_probe_per_layer(tiny_pretrain_ckpt, demo_root, tmp_path):
    out = tmp_path / "probe"
    nsynth = str(demo_root / "nsynth")
    code = lightning_w2v_main(["probe-layers", "--ckpt", str(tiny_pretrain_ckpt), "--nsynth", nsynth,
                         "--task", "instrument", "--out", str(out), "--max-epochs", "1", "--subset", "1",
                         "--weighted", "--override=--trainer.limit_val_batches=1",
                         "--override=--trainer.num_sanity_val_steps=0",
                         "--override=--trainer.enable_progress_bar=false"])
    assert code == 0
    rows = _rows(out / "probe_layers.csv")
    assert [r["layer"] for r in rows] == ["0", "1", "2", "weighted"]  # tiny: L = 2, all hidden states
    for row in rows:
        assert 0.0 <= float(row["test_acc"]) <= 1.0 and 0.0 <= float(row["test_acc_top5"]) <= 1.0
        assert int(row["train_examples"]) == 11  # subset=1: one note per family
        assert float(row["test_majority_acc"]) == pytest.approx(0.1)  # 10 test families, one note each
        summary = json.loads((Path(row["run_dir"]) / "test_metrics.json").read_text())
        assert str(summary["layer"]) == row["layer"] and summary["policy"] == "FE"
        assert float(row["test_acc"]) == pytest.approx(summary["metrics"]["test/acc"])
        command = (Path(row["run_dir"]) / "command.txt").read_text()
        assert "policy/fe.yaml" in command and "demo_instrument.yaml" in command
    assert (out / "probe_layers.png").read_bytes()[:8] == PNG_MAGIC
    # the weighted probe ran with LayerWeightsLogger: its weights, as a bar chart and as numbers
    weighted_dir = Path(rows[-1]["run_dir"])
    weights = json.loads((weighted_dir / "layer_weights.json").read_text())
    assert weights["layers"] == ["0 (input)", "1", "2"] and sum(weights["weights"]) == pytest.approx(1.0)
    assert (weighted_dir / "layer_weights.png").read_bytes()[:8] == PNG_MAGIC
    logged = _rows(next(weighted_dir.glob("logs/version_*/metrics.csv")))
    assert any(r.get("layer_weights/0") for r in logged)  # per-epoch scalars reach the logger


def test_label_efficiency_command_trains_on_k_notes_per_class(tiny_pretrain_ckpt, demo_root, tmp_path):
    out = tmp_path / "label_efficiency"
    nsynth = str(demo_root / "nsynth")
    code = lightning_w2v_main(["label-efficiency", "--ckpt", str(tiny_pretrain_ckpt), "--nsynth", nsynth,
                         "--task", "instrument", "--out", str(out), "--ks", "1", "2", "--policies", "FE", "FT2",
                         "--max-epochs", "1", "--override=--trainer.limit_val_batches=1",
                         "--override=--trainer.limit_test_batches=1", "--override=--trainer.num_sanity_val_steps=0",
                         "--override=--trainer.enable_progress_bar=false"])
    assert code == 0
    rows = _rows(out / "label_efficiency.csv")
    assert [(r["policy"], r["k"]) for r in rows] == [("FE", "1"), ("FE", "2"), ("FT2", "1"), ("FT2", "2")]
    for row in rows:
        assert int(row["train_examples"]) == 11 * int(row["k"])  # k notes of each of the 11 families
        assert row["n"] == "1" and row["seeds"] == "0" and 0.0 <= float(row["test_acc_mean"]) <= 1.0
    runs = _rows(out / "label_efficiency_runs.csv")
    for run in runs:
        command = (Path(run["run_dir"]) / "command.txt").read_text()
        assert f"--data.init_args.few_shot_k={run['k']}" in command
        assert f"policy/{run['policy'].lower()}.yaml" in command
    assert (out / "label_efficiency.png").read_bytes()[:8] == PNG_MAGIC


def test_layer_weights_logger_logs_a_bar_chart_to_wandb(tiny_pretrain_ckpt, tmp_path, monkeypatch):
    import wandb

    from lightning_w2v.callbacks import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    module = FinetuneModule(EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt)), task="instrument",
                            policy="FE", layer="weighted")
    data = [{"waveforms": torch.randn(16000), "labels": torch.tensor(i % 11)} for i in range(4)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    callback = LayerWeightsLogger()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                         logger=WandbLogger(project="lightning-w2v-test", save_dir=str(tmp_path)),
                         callbacks=[callback])
    trainer.fit(module, loader, loader)
    wandb.finish()
    weights = json.loads((tmp_path / "layer_weights.json").read_text())["weights"]
    torch.testing.assert_close(torch.tensor(weights), module.head.layer_weights().detach())
    assert not torch.allclose(torch.tensor(weights), torch.full((3,), 1 / 3))  # they were learned
    assert callback.png_path == tmp_path / "layer_weights.png" and callback.png_path.is_file()
    records = finished_run_records(tmp_path)
    for key in (b"layer_weights/bar", b"layer_weights/chart", b"layer_weights/0"):
        assert key in records, key
