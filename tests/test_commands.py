"""The lightning-w2v analysis commands end to end, including their W&B logging (offline)."""
from __future__ import annotations

import json

from wandb_records import finished_run_records

from lightning_w2v.commands import main


def test_analyze_codebooks_writes_outputs_and_logs_to_wandb(tiny_pretrain_ckpt, demo_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "codebooks"
    code = main(["analyze", "codebooks", "--ckpt", str(tiny_pretrain_ckpt), "--nsynth", str(demo_root / "nsynth"),
                 "--max-notes", "40", "--out", str(out), "--wandb-project", "lw2v-test"])
    assert code == 0
    summary = json.loads((out / "codebook_summary.json").read_text())
    assert summary["meta"]["frames"] == 40 * 199  # 4 s notes -> 199 frames each
    assert (out / "codebook_pitch.png").stat().st_size > 5000
    assert b"analysis/codebooks/pitch" in finished_run_records(out)  # the W&B run lives beside the outputs


def test_results_prints_table1_and_logs_a_wandb_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for seed, acc in ((0, 0.70), (1, 0.80)):
        run = tmp_path / "runs" / f"pitch_fe_{seed}"
        run.mkdir(parents=True)
        (run / "test_metrics.json").write_text(json.dumps(
            {"task": "pitch", "policy": "FE", "encoder": "music", "seed": seed, "metrics": {"test/acc": acc}}))
    assert main(["results", str(tmp_path / "runs"), "--csv", str(tmp_path / "t.csv"),
                 "--wandb-project", "lw2v-test"]) == 0
    printed = capsys.readouterr().out
    assert "75.0 ± 7.1 (n=2)" in printed and "76.0" in printed  # ours next to the paper's FE pitch
    assert b"results/table1" in finished_run_records(tmp_path)


def test_a_command_that_exits_leaves_its_wandb_run_complete(tmp_path):
    """The product side of the W&B wait: once the process has exited, its run file holds every record
    (the exit record included), with no wait at all."""
    import os
    import subprocess
    import sys

    run = tmp_path / "runs" / "pitch_fe_0"
    run.mkdir(parents=True)
    (run / "test_metrics.json").write_text(json.dumps(
        {"task": "pitch", "policy": "FE", "encoder": "music", "seed": 0, "metrics": {"test/acc": 0.5}}))
    subprocess.run([sys.executable, "-m", "lightning_w2v", "results", str(tmp_path / "runs"), "--csv",
                    str(tmp_path / "t.csv"), "--wandb-project", "lw2v-test"], check=True, capture_output=True,
                   env={**os.environ, "WANDB_MODE": "offline"}, timeout=300)
    assert b"results/table1" in finished_run_records(tmp_path, timeout=0)


def test_every_subcommand_and_option_has_plain_help():
    import argparse

    from lightning_w2v.commands import TRAINING_SUBCOMMANDS, build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in subparsers._choices_actions}
    for name, sub in subparsers.choices.items():
        assert helps.get(name), f"{name} has no help"
        if name in TRAINING_SUBCOMMANDS:
            continue  # the LightningCLI's own options and help
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and "``" not in action.help, f"{name} {action.option_strings or action.dest}"
    assert "``" not in parser.format_help()
