"""The README's main job end to end (``lightning-w2v demo --quick``) and the notebooks on its output."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_out(installed_demo) -> Path:
    """The quick demo of the installed package (``installed_demo`` in conftest.py)."""
    assert installed_demo["returncode"] == 0, installed_demo["log"][-6000:]
    assert "Everything is under" in installed_demo["log"]  # ends by saying where the results are
    return installed_demo["out"]


@pytest.mark.slow
def test_demo_writes_table_figures_and_report(demo_out):
    with open(demo_out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    cells = {(r["encoder"], r["policy"], r["task"]) for r in rows}
    tasks = ("pitch", "instrument")
    assert {(p, t) for e, p, t in cells if e == "music"} == {(p, t) for p in ("FE", "FT1", "FT2") for t in tasks}
    assert {(p, t) for e, p, t in cells if e == "random"} == {("FE", t) for t in tasks}  # the ablation rows
    for name in ("codebook_pitch.png", "codebook_family.png", "pwcca.png"):
        png = demo_out / "figures" / name
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000, name
    summary = json.loads((demo_out / "figures" / "codebook_summary.json").read_text())
    assert 0.0 <= summary["joint"]["pitch"]["nmi"] <= 1.0
    with open(demo_out / "figures" / "pwcca.csv") as handle:
        models = {row["model"] for row in csv.DictReader(handle)}
    assert models == {"pre-trained", "FT1 (pitch)", "FT2 (pitch)"}
    report = (demo_out / "REPORT.md").read_text()
    assert "SYNTHETIC" in report and "| pitch |" in report


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_demo_artefacts(notebook, demo_out, monkeypatch):
    monkeypatch.setenv("LIGHTNING_W2V_DEMO_OUT", str(demo_out))
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def test_three_notebooks_are_committed_without_outputs():
    assert {p.stem for p in NOTEBOOKS} == {"codebooks", "pwcca", "results"}
    for notebook in NOTEBOOKS:
        nb = nbformat.read(notebook, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{notebook.name} has outputs"
