"""``lightning-w2v device-check``: bench, bf16 fit steps and minutes of pre-training on a GPU, as JSON."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser("device-check",
                                  help="bench, bf16 fit steps and minutes of pre-training on a GPU, as JSON")
    check.add_argument("--out", required=True, help="output folder: new, empty, or one this command wrote")
    check.add_argument("--cpu-smoke", action="store_true",
                       help="every stage with the tiny model and a few steps on the CPU (what the tests run)")
    check.add_argument("--minutes", type=float, default=3.0, help="length of the pre-training stage (default: 3)")
    check.add_argument("--probe-every", type=int, default=200, help="steps between linear probes (default: 200)")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..workflows.device_check import device_check

    results = device_check(args.out, cpu_smoke=args.cpu_smoke, minutes=args.minutes, probe_every=args.probe_every)
    failed = [name for name, stage in results.items() if isinstance(stage, dict) and not stage.get("ok", True)]
    print(f"device check written to {Path(args.out) / 'device_check.json'}" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0
