"""From the demo's pre-trained checkpoint, FE learns instrument family and FT2 pitch far above chance.

Runs the demo's own steps (``lightning_w2v.workflows.demo.pretrain`` / ``finetune``: the demo YAMLs,
learning rates and epochs) on the demo data, and reads the test accuracy each run wrote.
Chance is one over the number of classes present in the test split, read from the data.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightning_w2v.runner import run_cli as cli_main
from lightning_w2v.workflows.demo import QUICK, finetune, pretrain

LABEL_KEY = {"pitch": "pitch", "instrument": "instrument_family"}
# Accuracy must exceed this multiple of chance. Measured in the demo on the 2-core CPU machine
# (2026-12-01): pitch FE 64.0%, FT2 77.0% (chance 2.0%); instrument FE 57.5%, FT2 47.5% (chance 10%).
MARGIN = {"pitch": 10.0, "instrument": 3.0}


@pytest.fixture(scope="module")
def demo_run(demo_root: Path, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("demo_learning")
    return out, pretrain(out, demo_root, quick=False, seed=0, probe=False)  # probes: test_probe.py


def chance(nsynth_root: Path, task: str) -> float:
    examples = json.loads((nsynth_root / "nsynth-test" / "examples.json").read_text())
    return 1.0 / len({example[LABEL_KEY[task]] for example in examples.values()})


@pytest.mark.slow
# both tasks and both policies that keep part of the encoder frozen, in two runs (each run costs
# half a minute or more; the demo itself runs all six, and the quick demo's table is checked)
@pytest.mark.parametrize(("policy", "task"), [("FE", "instrument"), ("FT2", "pitch")])
def test_policy_learns_far_above_chance_from_the_demo_checkpoint(demo_root, demo_run, task, policy):
    out, encoder = demo_run
    run_dir = finetune(out, demo_root, encoder, task, policy, quick=False, seed=0)
    result = json.loads((run_dir / "test_metrics.json").read_text())
    assert result["encoder_path"] == str(encoder) and result["policy"] == policy
    accuracy, floor = result["metrics"]["test/acc"], MARGIN[task] * chance(demo_root / "nsynth", task)
    assert accuracy > floor, f"{task}/{policy}: test accuracy {accuracy:.3f} is not above {floor:.3f}"


@pytest.mark.slow
def test_test_subcommand_re_evaluates_a_finished_run(demo_root, demo_run, tmp_path):
    """``python cli.py test`` with the fit's configs and ``--ckpt_path`` gives the fit's test numbers."""
    _, encoder = demo_run
    run_dir = finetune(tmp_path, demo_root, encoder, "pitch", "FE", quick=True, seed=0)
    written = json.loads((run_dir / "test_metrics.json").read_text())
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    again = tmp_path / "re_test"
    cli_main(["test", "--config", "finetune/demo_pitch", "--config", "finetune/policy/fe",
              f"--model.init_args.encoder.path={encoder}", f"--data.init_args.root={demo_root / 'nsynth'}",
              f"--trainer.default_root_dir={again}", f"--ckpt_path={best}",
              f"--trainer.limit_test_batches={QUICK['finetune_batches']['test']}",  # as the quick fit tested
              "--trainer.enable_progress_bar=false"])
    result = json.loads((again / "test_metrics.json").read_text())
    assert result["policy"] == "FE" and result["task"] == "pitch"
    for name, value in written["metrics"].items():
        assert result["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
