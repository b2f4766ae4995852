"""``lightning-w2v export``: our checkpoint as a transformers folder (and a torchaudio state dict)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="export a checkpoint to transformers (and torchaudio)")
    export.add_argument("--ckpt", required=True, help="our pre-training (or fine-tuning) checkpoint")
    export.add_argument("--to", required=True, help="output transformers model folder (new or empty)")
    export.add_argument("--torchaudio", default=None, help="also write a torchaudio state dict here (.pt)")
    export.add_argument("--legacy-weight-norm", action="store_true",
                        help="torchaudio file: weight_g/weight_v names, for old torchaudio versions")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoints.export import export_to_transformers, export_torchaudio_state_dict, resolve_model

    model = resolve_model(args.ckpt)
    out = export_to_transformers(model, args.to)
    print(f"transformers directory: {out}")
    if args.torchaudio:
        path = export_torchaudio_state_dict(model, args.torchaudio, args.legacy_weight_norm)
        print(f"torchaudio state dict: {path} (wav2vec2_model arguments in {path}.json)")
    return 0
