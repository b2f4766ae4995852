"""The lightning-w2v command: the package's one front door.

``lightning-w2v``, ``python -m lightning_w2v`` and the checkout's ``cli.py`` all call
:func:`main`. Each subcommand is one module of this package (:data:`SUBCOMMANDS`) holding its
parser (``register``) and its run; ``fit|validate|test|predict`` hand their arguments to the
LightningCLI runner (:mod:`lightning_w2v.runner`), which sits below everything that calls it.
A user's error (bad data, config, checkpoint or disk) ends any of them with one ``error:``
line and exit code 2 (:mod:`lightning_w2v.errors`).

Nothing in the package imports this one: it is the top. Its modules import what they run
when they run, so that ``--help`` and the small commands start without loading torch.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: waiting threads sleep, not spin

from .. import __version__  # noqa: E402
from ..errors import run_reporting_errors  # noqa: E402
from .train import TRAINING_SUBCOMMANDS  # noqa: E402

# The subcommands' modules, in the order `lightning-w2v --help` lists them
SUBCOMMANDS = ("train", "demo", "data", "analyze", "results", "evaluate", "bench", "device_check", "export",
               "probe", "probe_layers", "label_efficiency")

__all__ = ["SUBCOMMANDS", "TRAINING_SUBCOMMANDS", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-w2v",
        description="wav2vec 2.0 for music: pre-training, fine-tuning and probing on downstream tasks "
                    "(FE/FT1/FT2), the paper's analyses.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f".{name}", __name__).register(subparsers)
    return parser


def _run(argv: list[str]) -> int:
    if argv and argv[0] in TRAINING_SUBCOMMANDS:  # the LightningCLI parses these itself
        from .train import run_training

        return run_training(argv)
    args = build_parser().parse_args(argv)
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a user's error is one ``error:`` line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("-h", "--help", "--version"):
        from ..runner.terminal import configure_threads  # loads torch: not for --help

        configure_threads()
    return run_reporting_errors(lambda: _run(argv))
