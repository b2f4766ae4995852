"""Tests for lightning_w2v.analysis.results (Table 1 data, run collection, formatting)."""
from __future__ import annotations

import csv
import json
import math

import pytest

from lightning_w2v.analysis import (
    PAPER_TABLE1,
    aggregate,
    collect_runs,
    format_markdown,
    paper_accuracy,
    write_csv,
)


def _write_run(root, name, task, policy, encoder, seed, acc, **extra):
    d = root / name
    d.mkdir(parents=True)
    metrics = {"test/acc": acc, "test/acc_top5": min(1.0, acc + 0.1), "test/f1_macro": acc - 0.05}
    if task == "pitch":
        metrics["test/chroma_acc"] = acc + 0.02
    metrics.update(extra)
    payload = {"task": task, "policy": policy, "encoder": encoder, "seed": seed,
               "metrics": metrics}
    (d / "test_metrics.json").write_text(json.dumps(payload))
    return d


@pytest.fixture
def run_root(tmp_path):
    root = tmp_path / "runs"
    _write_run(root, "pitch/FE/s0", "pitch", "FE", "music", 0, 0.70)
    _write_run(root, "pitch/FE/s1", "pitch", "FE", "music", 1, 0.74)
    _write_run(root, "inst/FT2/s0", "instrument", "FT2", "music", 0, 0.73)
    _write_run(root, "speech/s0", "pitch", "FE", "speech", 0, 0.60)
    (root / "junk").mkdir()
    (root / "junk" / "test_metrics.json").write_text("{not json")
    return root


def test_paper_table():
    models = [r["model"] for r in PAPER_TABLE1]
    assert len(models) == 9
    assert paper_accuracy("music", "FE", "pitch") == 76.0
    assert paper_accuracy("music", "FT1", "instrument") == 70.0
    assert paper_accuracy("music", "FT2", "pitch") == 90.0
    assert paper_accuracy("speech", "FE", "pitch") is None
    by_name = {r["model"]: r for r in PAPER_TABLE1}
    assert by_name["CREPE"]["instrument"] is None
    assert by_name["SF NFNet-50"]["instrument"] == 78.2
    assert by_name["w2v2 speech FE (Wang et al.)"]["pitch"] == 35.0
    assert by_name["MuLaP"]["pitch"] is None and by_name["MuLaP"]["instrument"] == 71.7
    assert by_name["CTE"]["instrument"] == 70.0


def test_collect_runs(run_root):
    with pytest.warns(UserWarning, match="skipping"):
        runs = collect_runs([run_root])
    assert len(runs) == 4
    assert all("path" in r for r in runs)
    # the same file reached twice (dir and file) is loaded once
    with pytest.warns(UserWarning):
        again = collect_runs([run_root, run_root / "pitch" / "FE" / "s0" / "test_metrics.json"])
    assert len(again) == 4
    # a single file path works
    one = collect_runs([run_root / "speech" / "s0" / "test_metrics.json"])
    assert one[0]["encoder"] == "speech"


def test_invalid_fields_are_skipped(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "test_metrics.json").write_text(json.dumps({"task": "tempo", "policy": "FE"}))
    with pytest.warns(UserWarning, match="task must be"):
        assert collect_runs([tmp_path]) == []


def test_aggregate_mean_std(run_root):
    with pytest.warns(UserWarning):
        rows = aggregate(collect_runs([run_root]))
    keys = [(r["encoder"], r["policy"], r["task"]) for r in rows]
    assert keys == [("music", "FE", "pitch"), ("music", "FT2", "instrument"),
                    ("speech", "FE", "pitch")]
    fe = rows[0]
    assert fe["n"] == 2 and fe["seeds"] == [0, 1]
    acc = fe["metrics"]["test/acc"]
    assert acc["mean"] == pytest.approx(0.72)
    assert acc["std"] == pytest.approx(math.sqrt(((0.70 - 0.72) ** 2 + (0.74 - 0.72) ** 2) / 1))
    assert acc["n"] == 2
    ft2 = rows[1]
    assert ft2["n"] == 1 and ft2["metrics"]["test/acc"]["std"] == 0.0
    assert "test/chroma_acc" not in ft2["metrics"]  # instrument runs have no chroma


def test_format_markdown(run_root):
    with pytest.warns(UserWarning):
        rows = aggregate(collect_runs([run_root]))
    md = format_markdown(rows)
    assert "72.0 ± 2.8 (n=2)" in md
    assert "| 73.0 |" in md and "± 0.0" not in md  # a single run shows no spread
    for number in ("76.0", "64.0", "82.0", "70.0", "90.0", "75.0", "88.0", "78.2", "65.0",
                   "35.0", "40.2", "71.7"):
        assert number in md
    for name in ("CREPE", "SF NFNet-50", "MuLaP", "CTE", "HEAR", "Wang et al."):
        assert name in md
    lines = md.splitlines()
    fe = next(ln for ln in lines if ln.startswith("| w2v2 music FE |"))
    cells = [c.strip() for c in fe.strip("|").split("|")]
    assert cells == ["w2v2 music FE", "72.0 ± 2.8 (n=2)", "76.0", "—", "64.0"]
    ft1 = next(ln for ln in lines if ln.startswith("| w2v2 music FT1 |"))
    assert ft1.count("—") == 2  # paper row shown even without our runs
    crepe = next(ln for ln in lines if ln.startswith("| CREPE |"))
    assert "—" in crepe
    ours_only = format_markdown(rows, include_paper=False)
    assert "CREPE" not in ours_only and "76.0" not in ours_only
    assert "w2v2 speech FE" in ours_only
    chroma = format_markdown(rows, metric="test/chroma_acc")
    assert "74.0 ± 2.8 (n=2)" in chroma and "CREPE" not in chroma


def test_write_csv(run_root, tmp_path):
    with pytest.warns(UserWarning):
        rows = aggregate(collect_runs([run_root]))
    p = write_csv(rows, tmp_path / "out" / "table.csv")
    with p.open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 3
    assert float(table[0]["test/acc_mean"]) == pytest.approx(0.72)
    assert table[0]["seeds"] == "0;1"
    assert table[0]["paper_acc_pct"] == "76.0"
    assert table[2]["paper_acc_pct"] == ""
    assert table[1]["test/chroma_acc_mean"] == ""
