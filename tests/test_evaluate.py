"""``lightning-w2v evaluate``: FE probes of several encoders over several tasks, one table, resumable."""
from __future__ import annotations

import csv
import json

import pytest
from wandb_records import finished_run_records

from lightning_w2v.commands import main
from lightning_w2v.errors import ConfigError
from lightning_w2v.workflows.evaluation import EncoderChoice, parse_task, row_labels


def test_evaluate_writes_one_table_over_three_encoders_and_four_tasks(demo_root, tiny_pretrain_ckpt, tmp_path, capsys,
                                                                      monkeypatch):
    out = tmp_path / "eval"
    args = ["evaluate", "--encoder", "logmel", "--encoder", "random:tiny",
            "--encoder", f"checkpoint:{tiny_pretrain_ckpt}",
            "--task", f"gtzan_genre={demo_root / 'gtzan'}", "--task", f"mtt_tagging={demo_root / 'mtt'}",
            "--task", f"emomusic={demo_root / 'emomusic'}", "--task", f"manifest={demo_root / 'manifest' / 'tags.csv'}",
            "--out", str(out), "--cpu", "--max-epochs", "1", "--batch-size", "16",
            "--override=--trainer.logger=false", "--override=--trainer.enable_progress_bar=false",
            "--override=--trainer.limit_train_batches=1", "--override=--trainer.limit_val_batches=1",
            "--override=--trainer.limit_test_batches=2", "--override=--trainer.num_sanity_val_steps=0"]
    assert main(args) == 0
    with open(out / "evaluation.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    for column in ("gtzan_genre acc", "mtt_tagging auroc_macro", "mtt_tagging ap_macro", "emomusic r2",
                   "emomusic r2_valence", "manifest auroc_macro"):
        assert column in header
    ours = {"log-mel": "logmel", "random": "random-tiny", "music": "checkpoint-tiny"}
    assert set(ours) | {"MERT-330M (MARBLE, as reported by MuQ)"} == set(body)
    for label, folder in ours.items():  # every cell is its run's own test metric, in %
        for task, metric in (("gtzan_genre", "acc"), ("mtt_tagging", "ap_macro"), ("emomusic", "r2"),
                             ("manifest", "auroc_macro")):
            written = json.loads((out / folder / task / "seed0" / "test_metrics.json").read_text())
            assert body[label][f"{task} {metric}"] == f"{100 * written['metrics'][f'test/{metric}']:.1f}"
    assert body["MERT-330M (MARBLE, as reported by MuQ)"]["gtzan_genre acc"] == "78.6"
    assert "MuQ (Zhu et al. 2025)" in (out / "evaluation.md").read_text()
    capsys.readouterr()
    # a second call runs nothing again: it resumes from the runs' own summaries, and logs the table to W&B
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main(args + ["--wandb-project", "lw2v-test"]) == 0
    assert capsys.readouterr().out.count("done before") == 12
    assert b"evaluate/table" in finished_run_records(out)


def test_encoder_and_task_arguments_are_checked():
    two = [EncoderChoice.parse("checkpoint:runs/a/last.ckpt"), EncoderChoice.parse("checkpoint:runs/b/best.ckpt")]
    assert [e.slug for e in two] == ["checkpoint-last", "checkpoint-best"]
    assert list(row_labels(two).values()) == ["checkpoint-last", "checkpoint-best"]  # not two rows called "music"
    assert EncoderChoice.parse("huggingface:m-a-p/MERT-v1-330M").slug == "huggingface-m-a-p_MERT-v1-330M"
    with pytest.raises(ConfigError, match="the source must be one of"):
        EncoderChoice.parse("mert:x")
    with pytest.raises(ConfigError, match="checkpoint needs a path"):
        EncoderChoice.parse("checkpoint")
    with pytest.raises(ConfigError, match="expected TASK=DATA"):
        parse_task("genre=data")
