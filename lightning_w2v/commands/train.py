"""``lightning-w2v fit|validate|test|predict``: training and evaluation from YAML configs (the LightningCLI)."""
from __future__ import annotations

import argparse

TRAINING_SUBCOMMANDS = {
    "fit": "train (pre-training or fine-tuning) from YAML configs",
    "validate": "evaluate a checkpoint on the validation split",
    "test": "evaluate a checkpoint on the test split",
    "predict": "run a checkpoint on the prediction data",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, text in TRAINING_SUBCOMMANDS.items():
        training = subparsers.add_parser(name, help=f"{text} (the LightningCLI; see lightning-w2v {name} --help)",
                                         add_help=False)
        training.add_argument("cli_args", nargs=argparse.REMAINDER)


def run_training(argv: list[str]) -> int:
    """``argv`` = ``[subcommand, *LightningCLI arguments]``."""
    from ..runner import run_cli

    run_cli(argv)
    return 0
