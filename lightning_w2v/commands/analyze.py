"""``lightning-w2v analyze codebooks|pwcca``: the paper's analyses of checkpoints (Fig. 1-3)."""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from .options import add_encoder_source


def register(subparsers: argparse._SubParsersAction) -> None:
    analyze = subparsers.add_parser("analyze", help="the paper's analyses of checkpoints (codebooks, PWCCA)")
    analyze.add_argument("analysis", choices=["codebooks", "pwcca"],
                         help="codebooks: codeword/label co-occurrence (Fig. 1-2); pwcca: CNN vs each layer (Fig. 3)")
    analyze.add_argument("--ckpt", action="append", required=True, help="checkpoint (repeat for PWCCA)")
    analyze.add_argument("--name", action="append", default=None, help="display name per --ckpt (PWCCA)")
    add_encoder_source(analyze, repeatable=True)
    analyze.add_argument("--nsynth", help="NSynth root (codebooks)")
    analyze.add_argument("--split", default="test", help="NSynth split for the codebooks (default: test, as the paper)")
    analyze.add_argument("--max-notes", type=int, default=None, help="use only the first N notes (default: all)")
    analyze.add_argument("--baseline-ckpt", default=None,
                         help="codebooks: compare with this checkpoint (default: an untrained model of the same shape)")
    analyze.add_argument("--seed", type=int, default=0, help="codebooks: the untrained baseline's initialisation")
    analyze.add_argument("--musicnet", help="MusicNet root (PWCCA)")
    analyze.add_argument("--fraction", type=float, default=0.5, help="share of recordings for PWCCA (the paper: 0.5)")
    analyze.add_argument("--out", default="analysis_out", help="output folder: new, empty, or an analysis folder")
    analyze.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    analyze.add_argument("--wandb-project", default=None, help="also log figures and numbers to this W&B project")
    analyze.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import runners
    from ..callbacks import start_wandb_run

    needed = "nsynth" if args.analysis == "codebooks" else "musicnet"
    if not getattr(args, needed):
        raise ConfigError(f"analyze {args.analysis} needs --{needed}")
    if args.analysis == "codebooks":
        runners.check_codebook_sources(args.ckpt, args.source)  # before any W&B run or folder exists
    run = start_wandb_run(args.wandb_project, job_type=f"analyze-{args.analysis}",
                          config=vars(args) | {"func": None}, save_dir=args.out)
    try:
        if args.analysis == "codebooks":
            summary = runners.codebook_analysis(args.ckpt[0], args.nsynth, args.out, split=args.split,
                                                max_notes=args.max_notes, device=args.device, logger=run,
                                                baseline_ckpt=args.baseline_ckpt, baseline_seed=args.seed)
            print(f"codebook analysis written to {args.out}")
            for kind in ("pitch", "family"):
                stats, before = summary["joint"][kind], summary["untrained"]["joint"][kind]
                print(f"  joint code vs {kind}: NMI {stats['nmi']:.3f} (untrained {before['nmi']:.3f}, shuffled "
                      f"{stats['nmi_shuffled_mean']:.3f}), purity {stats['purity']:.3f} "
                      f"(untrained {before['purity']:.3f})")
            return 0
        curves = runners.pwcca_analysis(args.ckpt, args.musicnet, args.out, names=args.name, fraction=args.fraction,
                                        device=args.device, logger=run, sources=args.source)
        for name, values in curves.items():
            print(f"  {name}: " + " ".join(f"{v:.3f}" for v in values))
        print(f"PWCCA written to {args.out}")
        return 0
    finally:
        if run is not None:
            run.finish()
