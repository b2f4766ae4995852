"""``lightning-w2v demo``: the whole paper in miniature on synthetic data."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="the whole paper in miniature on synthetic data (CPU, about 4 minutes)")
    demo.add_argument("--out", default="demo_out",
                      help="output folder: new, empty, or a demo folder (default: demo_out)")
    demo.add_argument("--quick", action="store_true", help="far fewer steps: a one-minute smoke test of the pipeline")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data, the runs and the report (default: 0)")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..workflows.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)
    return 0
