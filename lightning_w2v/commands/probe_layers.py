"""``lightning-w2v probe-layers``: a frozen-encoder linear probe on every hidden state."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_probe_options


def register(subparsers: argparse._SubParsersAction) -> None:
    probe = subparsers.add_parser("probe-layers", help="frozen-encoder linear probe on every hidden state")
    add_probe_options(probe)
    probe.add_argument("--layers", type=int, nargs="*", default=None, help="hidden states (default: all, 0..L)")
    probe.add_argument("--max-epochs", type=int, default=3, help="epochs per probe (default: 3)")
    probe.add_argument("--seed", type=int, default=0, help="seed of the runs and the note selection")
    probe.add_argument("--weighted", action="store_true", help="also probe the learned weighted sum of layers")
    probe.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..workflows.probing import probe_layers

    rows = probe_layers(args.ckpt, args.data, args.task, args.out, layers=args.layers, max_epochs=args.max_epochs,
                        batch_size=args.batch_size, seed=args.seed, weighted=args.weighted, config=args.config,
                        subset=args.subset, extra_args=args.override, source=args.source)
    metric = next(k for k in rows[0] if k.startswith("test_"))
    for row in rows:
        print(f"  layer {row['layer']}: {metric.replace('_', ' ', 1)} {row[metric]:.3f}")
    print(f"written: {Path(args.out) / 'probe_layers.csv'}, {Path(args.out) / 'probe_layers.png'}")
    return 0
