"""``lightning-w2v label-efficiency``: test accuracy against k training notes per class."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..vocabulary import POLICIES
from .options import add_probe_options, number


def register(subparsers: argparse._SubParsersAction) -> None:
    efficiency = subparsers.add_parser("label-efficiency",
                                       help="the test metric against the labels trained on (k notes per class, "
                                            "or k minutes of labelled audio)")
    add_probe_options(efficiency)
    efficiency.add_argument("--ks", type=number, nargs="+", default=[1, 2, 5, 10],
                            help="the label budgets: NSynth notes per class, transcription minutes of labelled audio "
                                 "(default: 1 2 5 10)")
    efficiency.add_argument("--policies", nargs="+", default=["FE", "FT2"], choices=POLICIES,
                            help="fine-tuning policies (default: FE FT2)")
    efficiency.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, each a run (default: 0)")
    efficiency.add_argument("--max-epochs", type=int, default=5, help="epochs per run (default: 5)")
    efficiency.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..workflows.probing import label_efficiency

    rows = label_efficiency(args.ckpt, args.data, args.task, ks=args.ks, policies=args.policies, seeds=args.seeds,
                            out_dir=args.out, max_epochs=args.max_epochs, batch_size=args.batch_size,
                            config=args.config, subset=args.subset, extra_args=args.override,
                            source=args.source)
    metric = next(k.removesuffix("_mean") for k in rows[0] if k.endswith("_mean"))
    for row in rows:
        print(f"  {row['policy']} k={row['k']}: {metric.replace('_', ' ', 1)} {row[metric + '_mean']:.3f} ± "
              f"{row[metric + '_std']:.3f} (n={row['n']}, {row['train_examples']} training items)")
    print(f"written: {Path(args.out) / 'label_efficiency.csv'}, {Path(args.out) / 'label_efficiency.png'}")
    return 0
