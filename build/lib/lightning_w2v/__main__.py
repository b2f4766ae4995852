"""The ``lightning-w2v`` command: fit/validate/test/predict, demo, data, analyze, results, bench, export, probing.

``lightning-w2v fit|validate|test|predict`` is the LightningCLI (the same as ``python cli.py``
in a checkout); the other subcommands hold everything around training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .errors import ConfigError, run_reporting_errors


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)
    return 0


def _data(args: argparse.Namespace) -> int:
    if args.action == "download":
        from .data.download import download_dataset

        download_dataset(args.dataset, args.root, base_url=args.base_url, splits=args.splits)
        print(f"{args.dataset} is ready under {args.root}")
        return 0
    if args.action == "verify":
        from .data.verify import verify_main

        return verify_main(args.dataset, args.root, check_audio=args.check_audio)
    if args.dataset != "musicnet":
        raise ConfigError("only MusicNet needs preparing (NSynth is read as distributed)")
    from .data.musicnet import MusicNetDataModule

    module = MusicNetDataModule(root=args.root, cache_dir=args.cache_dir)
    module.prepare_data()
    module.setup("fit")
    summary = module.summary()
    print("MusicNet 16 kHz cache ready: " + ", ".join(f"{k}={v:.6g}" for k, v in summary.items()))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from .analysis import runners
    from .callbacks import start_wandb_run

    run = start_wandb_run(args.wandb_project, job_type=f"analyze-{args.analysis}",
                          config=vars(args) | {"func": None}, save_dir=args.out)
    try:
        return _run_analysis(args, runners, run)
    finally:
        if run is not None:
            run.finish()


def _run_analysis(args: argparse.Namespace, runners, run) -> int:
    if args.analysis == "codebooks":
        summary = runners.codebook_analysis(args.ckpt[0], args.nsynth, args.out, split=args.split,
                                            max_notes=args.max_notes, device=args.device, logger=run)
        joint = summary["joint"]
        print(f"codebook analysis written to {args.out}")
        for kind in ("pitch", "family"):
            stats = joint[kind]
            print(f"  joint code vs {kind}: NMI {stats['nmi']:.3f} (shuffled {stats['nmi_shuffled_mean']:.3f}), "
                  f"purity {stats['purity']:.3f}")
        return 0
    curves = runners.pwcca_analysis(args.ckpt, args.musicnet, args.out, names=args.name, fraction=args.fraction,
                                    device=args.device, logger=run)
    for name, values in curves.items():
        print(f"  {name}: " + " ".join(f"{v:.3f}" for v in values))
    print(f"PWCCA written to {args.out}")
    return 0


def _results(args: argparse.Namespace) -> int:
    from .analysis.results import aggregate, collect_runs, format_markdown, write_csv

    rows = aggregate(collect_runs(args.run_dirs))
    table = format_markdown(rows)
    print(table)
    if args.csv:
        write_csv(rows, args.csv)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.wandb_project:
        _log_results_table(args.wandb_project, rows, Path(args.csv).parent if args.csv else Path("."))
    return 0


def _log_results_table(project: str, rows: list[dict], save_dir: Path) -> None:
    """Table 1 (ours next to the paper's) as a W&B table."""
    import wandb

    from .analysis.results import paper_accuracy
    from .callbacks import start_wandb_run

    run = start_wandb_run(project, job_type="results", save_dir=save_dir)
    columns = ["encoder", "policy", "task", "n", "acc_mean", "acc_std", "paper_acc"]
    table = wandb.Table(columns=columns)
    for row in rows:
        acc = row["metrics"].get("test/acc", {})
        table.add_data(row["encoder"], row["policy"], row["task"], row["n"], acc.get("mean"), acc.get("std"),
                       paper_accuracy(row["encoder"], row["policy"], row["task"]))
    run.log({"results/table1": table})
    run.finish()


def _delegate(command: str, argv: Sequence[str]) -> int:
    """Commands with parsers of their own: bench, export, probe-layers, label-efficiency."""
    import importlib

    module_name, function = DELEGATED[command]
    module = importlib.import_module(module_name, package=__package__)
    return getattr(module, function)(list(argv)) or 0


DELEGATED = {"bench": (".bench", "main"), "export": (".checkpoints.export", "main"),
             "probe-layers": (".probing", "main"), "label-efficiency": (".probing", "label_efficiency_main")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-w2v", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="miniature of the whole paper on synthetic data (CPU, < 15 min)")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--quick", action="store_true", help="far fewer steps: a smoke test of the pipeline")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    data = sub.add_parser("data", help="download, verify or prepare MusicNet / NSynth")
    data.add_argument("action", choices=["download", "verify", "prepare"])
    data.add_argument("dataset", choices=["musicnet", "nsynth"])
    data.add_argument("--root", required=True)
    data.add_argument("--base-url", default=None, help="mirror (also LIGHTNING_W2V_<NAME>_URL)")
    data.add_argument("--splits", nargs="*", default=None, help="NSynth splits to download")
    data.add_argument("--check-audio", choices=["sample", "all", "none"], default="sample")
    data.add_argument("--cache-dir", default=None)
    data.set_defaults(func=_data)

    analyze = sub.add_parser("analyze", help="the paper's analyses on checkpoints")
    analyze.add_argument("analysis", choices=["codebooks", "pwcca"])
    analyze.add_argument("--ckpt", action="append", required=True, help="checkpoint (repeat for PWCCA)")
    analyze.add_argument("--name", action="append", default=None, help="display name per --ckpt")
    analyze.add_argument("--nsynth", help="NSynth root (codebooks)")
    analyze.add_argument("--split", default="test")
    analyze.add_argument("--max-notes", type=int, default=None)
    analyze.add_argument("--musicnet", help="MusicNet root (PWCCA)")
    analyze.add_argument("--fraction", type=float, default=0.5, help="share of recordings (the paper: half)")
    analyze.add_argument("--out", default="analysis_out")
    analyze.add_argument("--device", default="cpu")
    analyze.add_argument("--wandb-project", default=None, help="also log figures and numbers to this W&B project")
    analyze.set_defaults(func=_analyze)

    results = sub.add_parser("results", help="Table 1 from fine-tuning run folders")
    results.add_argument("run_dirs", nargs="+")
    results.add_argument("--csv", default=None)
    results.add_argument("--markdown", default=None)
    results.add_argument("--wandb-project", default=None, help="also log the table to this W&B project")
    results.set_defaults(func=_results)

    for name, text in (("fit", "train (pre-training or fine-tuning) from YAML configs: the LightningCLI"),
                       ("validate", "evaluate a checkpoint on the validation split"),
                       ("test", "evaluate a checkpoint on the test split"),
                       ("predict", "run a checkpoint on the prediction data")):
        sub.add_parser(name, help=text, add_help=False)
    sub.add_parser("bench", help="pre-training throughput benchmark (see BENCHMARKS.md)", add_help=False)
    sub.add_parser("export", help="export a checkpoint to transformers / torchaudio", add_help=False)
    sub.add_parser("probe-layers", help="frozen-encoder probe per layer", add_help=False)
    sub.add_parser("label-efficiency", help="accuracy vs examples per class", add_help=False)
    return parser


TRAINING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _run(argv: list[str]) -> int:
    if argv and argv[0] in TRAINING_SUBCOMMANDS:
        from .cli import main as cli_main

        cli_main(argv)
        return 0
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "analyze":
        needed = "nsynth" if args.analysis == "codebooks" else "musicnet"
        if not getattr(args, needed):
            build_parser().error(f"analyze {args.analysis} needs --{needed}")
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a user's error (bad data, config, checkpoint, disk) is one line, exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_reporting_errors(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
