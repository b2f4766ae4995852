"""The evaluation table: encoders as rows, each task's metrics as columns, published reference rows beside ours.

Built from ``results.aggregate`` rows (FE runs, mean ± sample std over seeds, in %), so the
table of ``lightning-w2v evaluate`` and any folder of runs read the same way.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..downstream import TASK_SPECS

MISSING = "–"
# Published FE probe numbers of reference models (%), by (task, metric). MARBLE's protocol (an MLP probe
# on frozen features, slices averaged per file); keep the source with every number.
PUBLISHED: dict[str, dict[tuple[str, str], float]] = {
    "MERT-330M (MARBLE, as reported by MuQ)": {
        ("instrument", "acc"): 72.6, ("pitch", "acc"): 94.4, ("gtzan_genre", "acc"): 78.6,
        ("mtt_tagging", "auroc_macro"): 91.3, ("mtt_tagging", "ap_macro"): 40.2,
        ("giantsteps_key", "key_weighted_score"): 65.6},
    "MusicFM (MARBLE, as reported by MuQ)": {("instrument", "acc"): 76.2, ("pitch", "acc"): 91.1},
    "MuQ (MARBLE, as reported by MuQ)": {("instrument", "acc"): 79.2, ("pitch", "acc"): 92.3},
}
SOURCE_NOTE = ("Published rows: MuQ (Zhu et al. 2025), its table of MARBLE results; MARBLE's probe is an MLP of "
               "512 on frozen features with the task's own settings, ours the head and settings of each run. "
               "Reproductions of MARBLE numbers land 1-5 points under the published ones.")


def task_columns(task: str, present: set[str]) -> list[str]:
    """The metrics a task's columns show: its spec's report metrics that the runs hold, else what they hold."""
    spec = TASK_SPECS.get(task)
    wanted = [m for m in (spec.report_metrics if spec else ()) if f"test/{m}" in present]
    return wanted or sorted(m.removeprefix("test/") for m in present if m != "test/loss")


def evaluation_rows(rows: Sequence[dict[str, Any]], tasks: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """The header and the rows (one per encoder of the FE runs, then the published ones) as strings."""
    fe = [r for r in rows if r["policy"] == "FE" and r["task"] in tasks]
    columns = []
    for task in tasks:
        present = {m for r in fe if r["task"] == task for m in r["metrics"]}
        columns += [(task, metric) for metric in task_columns(task, present)]
    encoders = list(dict.fromkeys(r["encoder"] for r in fe))
    index = {(r["encoder"], r["task"]): r for r in fe}
    body = []
    for encoder in encoders:
        cells = []
        for task, metric in columns:
            row = index.get((encoder, task))
            stats = row["metrics"].get(f"test/{metric}") if row else None
            if stats is None:
                cells.append(MISSING)
            elif stats["n"] == 1:
                cells.append(f"{100 * stats['mean']:.1f}")
            else:
                cells.append(f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f} (n={stats['n']})")
        body.append([encoder, *cells])
    for name, numbers in PUBLISHED.items():
        if any(key in numbers for key in columns):
            body.append([name, *(f"{numbers[key]:.1f}" if key in numbers else MISSING for key in columns)])
    return ["encoder", *(f"{task} {metric}" for task, metric in columns)], body


def format_evaluation(rows: Sequence[dict[str, Any]], tasks: Sequence[str]) -> str:
    """The table as Markdown (values in %, mean ± std over seeds), with the published rows' source."""
    header, body = evaluation_rows(rows, tasks)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    if any(row[0] in PUBLISHED for row in body):
        lines += ["", SOURCE_NOTE]
    return "\n".join(lines)
