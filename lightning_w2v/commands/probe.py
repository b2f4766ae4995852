"""``lightning-w2v probe``: linear probes of an encoder's layers and the baselines, as a table."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..vocabulary import PRESETS
from .options import add_encoder_source


def register(subparsers: argparse._SubParsersAction) -> None:
    table = subparsers.add_parser("probe", help="linear probes of an encoder's layers and the baselines, as a table")
    table.add_argument("--nsynth", required=True, help="NSynth-layout root, holding nsynth-{train,valid,test}/")
    table.add_argument("--ckpt", default=None, help="the encoder to probe: our checkpoint, or what --source names "
                       "(default: only the baselines)")
    add_encoder_source(table)
    table.add_argument("--hop-ms", type=float, default=None,
                       help="frame hop of an encoder whose hop is a choice (CREPE, PESTO; default 10 ms)")
    table.add_argument("--preset", default="tiny", choices=PRESETS,
                       help="architecture of the untrained baseline without --ckpt (default: tiny)")
    table.add_argument("--fit-split", default="train", help="split the regressions are fitted on (default: train)")
    table.add_argument("--eval-split", default="valid", help="split they are scored on (default: valid)")
    table.add_argument("--per-class", type=int, default=4, help="notes of every pitch and family per split")
    table.add_argument("--seed", type=int, default=0, help="which notes, and the untrained encoder's init")
    table.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    table.add_argument("--out", required=True, help="output folder: new, empty, or one this command wrote")
    table.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..workflows.baselines import probe_table

    rows = probe_table(args.nsynth, args.out, ckpt=args.ckpt, preset=args.preset, fit_split=args.fit_split,
                       eval_split=args.eval_split, per_class=args.per_class, seed=args.seed, device=args.device,
                       source=args.source, hop_ms=args.hop_ms)
    print(f"{'model':<28} {'feature':<24} {'pitch':>6} {'family':>6}")
    for row in rows:
        print(f"{row['model']:<28} {row['feature']:<24} {100 * row['pitch']:6.1f} {100 * row['family']:6.1f}")
    print(f"written: {Path(args.out) / 'probe_table.csv'}, {Path(args.out) / 'probe_table.md'}")
    return 0
