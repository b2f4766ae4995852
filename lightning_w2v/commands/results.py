"""``lightning-w2v results``: Table 1 from fine-tuning run folders, next to the paper's."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    results = subparsers.add_parser("results", help="Table 1 from fine-tuning run folders, next to the paper's, and "
                                    "the transcription table")
    results.add_argument("run_dirs", nargs="+", help="run folders (searched for test_metrics.json)")
    results.add_argument("--csv", default=None, help="also write the table as CSV here")
    results.add_argument("--markdown", default=None, help="also write the Markdown table here")
    results.add_argument("--wandb-project", default=None, help="also log the table to this W&B project")
    results.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.results import aggregate, collect_runs, format_markdown, format_transcription, write_csv
    from ..files import atomic_write_text

    rows = aggregate(collect_runs(args.run_dirs))
    table = format_markdown(rows)
    transcription = format_transcription(rows)
    if transcription:
        table += "\n" + transcription
    print(table)
    if args.csv:
        write_csv(rows, args.csv)
    if args.markdown:
        atomic_write_text(args.markdown, table + "\n")
    if args.wandb_project:
        log_results_table(args.wandb_project, rows, Path(args.csv).parent if args.csv else Path("."))
    return 0


def log_results_table(project: str, rows: list[dict], save_dir: Path) -> None:
    """Table 1 (ours next to the paper's) as a W&B table in its own run of ``project``."""
    import wandb  # slow to import; only W&B runs need it

    from ..analysis.results import paper_accuracy
    from ..callbacks import start_wandb_run

    run = start_wandb_run(project, job_type="results", save_dir=save_dir)
    table = wandb.Table(columns=["encoder", "policy", "task", "n", "acc_mean", "acc_std", "paper_acc"])
    for row in rows:
        acc = row["metrics"].get("test/acc", {})
        table.add_data(row["encoder"], row["policy"], row["task"], row["n"], acc.get("mean"), acc.get("std"),
                       paper_accuracy(row["encoder"], row["policy"], row["task"]))
    run.log({"results/table1": table})
    run.finish()
