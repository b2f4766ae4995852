"""The lightning-w2v command: one parser tree for every subcommand.

``lightning-w2v fit|validate|test|predict`` hands its arguments to the LightningCLI
(:mod:`lightning_w2v.cli`); every other subcommand is parsed here and runs one function of
the package. A user's error (bad data, config, checkpoint or disk) ends any of them with one
``error:`` line and exit code 2 (:mod:`lightning_w2v.errors`).

Each handler imports what it runs when it runs, so that ``--help`` and the small commands
start without loading torch and Lightning.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: waiting threads sleep, not spin

from .. import __version__  # noqa: E402
from ..errors import ConfigError, run_reporting_errors  # noqa: E402

TRAINING_SUBCOMMANDS = {
    "fit": "train (pre-training or fine-tuning) from YAML configs",
    "validate": "evaluate a checkpoint on the validation split",
    "test": "evaluate a checkpoint on the test split",
    "predict": "run a checkpoint on the prediction data",
}
TASKS = ("pitch", "instrument")
POLICIES = ("FE", "FT1", "FT2")
PRESETS = ("base", "small", "tiny")


# --------------------------------------------------------------------------- handlers
def _demo(args: argparse.Namespace) -> int:
    from ..workflows.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)
    return 0


def _data(args: argparse.Namespace) -> int:
    if args.action == "download":
        from ..data.download import download_dataset

        download_dataset(args.dataset, args.root, base_url=args.base_url, splits=args.splits,
                         keep_archives=not args.no_keep_archives)
        print(f"{args.dataset} is ready under {args.root}")
        return 0
    if args.action == "verify":
        from ..data.verify import verify_main

        expected = dict(args.expect) if args.expect else None
        return verify_main(args.dataset, args.root, expected_counts=expected, check_audio=args.check_audio,
                           sample_size=args.sample_size)
    if args.dataset != "musicnet":
        raise ConfigError("only MusicNet needs preparing (NSynth is read as distributed)")
    from ..data.musicnet import MusicNetDataModule

    module = MusicNetDataModule(root=args.root, cache_dir=args.cache_dir)
    module.prepare_data()
    module.setup("fit")
    summary = module.summary()
    print("MusicNet 16 kHz cache ready: " + ", ".join(f"{k}={v:.6g}" for k, v in summary.items()))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from ..analysis import runners
    from ..callbacks import start_wandb_run

    needed = "nsynth" if args.analysis == "codebooks" else "musicnet"
    if not getattr(args, needed):
        raise ConfigError(f"analyze {args.analysis} needs --{needed}")
    if args.analysis == "codebooks" and any(source != "checkpoint" for source in args.source or []):
        raise ConfigError("analyze codebooks needs a quantizer: only our pre-training checkpoints have one "
                          "(--source checkpoint)")
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


def _results(args: argparse.Namespace) -> int:
    from ..analysis.results import (
        aggregate,
        collect_runs,
        format_markdown,
        write_csv,
    )
    from ..files import atomic_write_text

    rows = aggregate(collect_runs(args.run_dirs))
    table = format_markdown(rows)
    print(table)
    if args.csv:
        write_csv(rows, args.csv)
    if args.markdown:
        atomic_write_text(args.markdown, table + "\n")
    if args.wandb_project:
        _log_results_table(args.wandb_project, rows, Path(args.csv).parent if args.csv else Path("."))
    return 0


def _log_results_table(project: str, rows: list[dict], save_dir: Path) -> None:
    """Table 1 (ours next to the paper's) as a W&B table in its own run of ``project``."""
    import wandb  # slow to import; only W&B runs need it

    from ..analysis.results import paper_accuracy
    from ..callbacks import start_wandb_run

    run = start_wandb_run(project, job_type="results", save_dir=save_dir)
    table = wandb.Table(columns=["encoder", "policy", "task", "n", "acc_mean", "acc_std", "paper_acc"])
    for row in rows:
        acc = row["metrics"].get("test/acc", {})
        table.add_data(row["encoder"], row["policy"], row["task"], row["n"], acc.get("mean"), acc.get("std"),
                       paper_accuracy(row["encoder"], row["policy"], row["task"]))
    run.log({"results/table1": table})
    run.finish()


def _bench(args: argparse.Namespace) -> int:
    import json

    from ..files import atomic_write_text
    from ..workflows.bench import format_table, run_benchmark

    result = run_benchmark(
        preset=args.preset, device=args.device, steps=args.steps, warmup=args.warmup, batch_size=args.batch_size,
        crop_seconds=args.crop_seconds, batch_seconds=args.batch_seconds, precision=args.precision,
        compile=args.compile, compare_transformers=args.compare_transformers, loader=not args.no_loader,
        seed=args.seed, share_steps=args.share_steps, peak_flops=args.peak_flops, probe_notes=args.probe_notes)
    print(format_table(result), flush=True)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..checkpoints.export import (
        export_to_transformers,
        export_torchaudio_state_dict,
        resolve_model,
    )

    model = resolve_model(args.ckpt)
    out = export_to_transformers(model, args.to)
    print(f"transformers directory: {out}")
    if args.torchaudio:
        path = export_torchaudio_state_dict(model, args.torchaudio, args.legacy_weight_norm)
        print(f"torchaudio state dict: {path} (wav2vec2_model arguments in {path}.json)")
    return 0


def _device_check(args: argparse.Namespace) -> int:
    from ..workflows.device_check import device_check

    results = device_check(args.out, cpu_smoke=args.cpu_smoke, minutes=args.minutes, probe_every=args.probe_every)
    failed = [name for name, stage in results.items() if isinstance(stage, dict) and not stage.get("ok", True)]
    print(f"device check written to {Path(args.out) / 'device_check.json'}" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


def _probe(args: argparse.Namespace) -> int:
    from ..workflows.baselines import probe_table

    rows = probe_table(args.nsynth, args.out, ckpt=args.ckpt, preset=args.preset, fit_split=args.fit_split,
                       eval_split=args.eval_split, per_class=args.per_class, seed=args.seed, device=args.device)
    print(f"{'model':<28} {'feature':<24} {'pitch':>6} {'family':>6}")
    for row in rows:
        print(f"{row['model']:<28} {row['feature']:<24} {100 * row['pitch']:6.1f} {100 * row['family']:6.1f}")
    print(f"written: {Path(args.out) / 'probe_table.csv'}, {Path(args.out) / 'probe_table.md'}")
    return 0


def _probe_layers(args: argparse.Namespace) -> int:
    from ..workflows.probing import probe_layers

    rows = probe_layers(args.ckpt, args.nsynth, args.task, args.out, layers=args.layers, max_epochs=args.max_epochs,
                        batch_size=args.batch_size, seed=args.seed, weighted=args.weighted, config=args.config,
                        subset=args.subset, extra_args=args.override, source=args.source)
    for row in rows:
        print(f"  layer {row['layer']}: test acc {row['test_acc']:.3f}")
    print(f"written: {Path(args.out) / 'probe_layers.csv'}, {Path(args.out) / 'probe_layers.png'}")
    return 0


def _label_efficiency(args: argparse.Namespace) -> int:
    from ..workflows.probing import label_efficiency

    rows = label_efficiency(args.ckpt, args.nsynth, args.task, ks=args.ks, policies=args.policies, seeds=args.seeds,
                            out_dir=args.out, max_epochs=args.max_epochs, batch_size=args.batch_size,
                            config=args.config, subset=args.subset, extra_args=args.override,
                            source=args.source)
    for row in rows:
        print(f"  {row['policy']} k={row['k']}: test acc {row['test_acc_mean']:.3f} ± {row['test_acc_std']:.3f} "
              f"(n={row['n']}, {row['train_examples']} training notes)")
    print(f"written: {Path(args.out) / 'label_efficiency.csv'}, {Path(args.out) / 'label_efficiency.png'}")
    return 0


# --------------------------------------------------------------------------- the parser tree
def _split_count(text: str) -> tuple[str, int]:
    split, _, count = text.partition("=")
    if not count.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected SPLIT=N, e.g. test=4096")
    return split, int(count)


def _subset(text: str) -> int | float:
    """'2' -> 2 notes per class; '0.1' (or '1.0') -> that fraction of each class."""
    return int(text) if text.strip().isdigit() else float(text)


def _add_probe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="pre-training (or fine-tuning) checkpoint of this project, "
                        "or the encoder --source names")
    parser.add_argument("--source", default="checkpoint",
                        choices=["checkpoint", "huggingface", "torchaudio", "fairseq"],
                        help="what --ckpt is: our checkpoint (default), a transformers folder or hub id (wav2vec 2.0, "
                             "HuBERT, WavLM, data2vec-audio, MERT), a torchaudio bundle name, a fairseq .pt")
    parser.add_argument("--nsynth", required=True, help="NSynth root, holding nsynth-{train,valid,test}/")
    parser.add_argument("--task", choices=TASKS, default="pitch", help="the NSynth task (default: pitch)")
    parser.add_argument("--out", required=True, help="output folder: new, empty, or one this command wrote")
    parser.add_argument("--config", default=None,
                        help="fine-tuning task config: demo (default), nsynth, a packaged name or a path; "
                             "the policy fragment is added")
    parser.add_argument("--batch-size", type=int, default=None, help="notes per batch (default: the config's)")
    parser.add_argument("--subset", type=_subset, default=None,
                        help="notes per class (an integer, e.g. 2) or a fraction of each class (e.g. 0.1)")
    parser.add_argument("--override", action="append", default=[],
                        help="one more option for each run, e.g. --override=--trainer.limit_train_batches=2 "
                             "(repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-w2v",
        description="wav2vec 2.0 for music: pre-training, NSynth fine-tuning (FE/FT1/FT2), the paper's analyses.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in TRAINING_SUBCOMMANDS.items():
        training = sub.add_parser(name, help=f"{text} (the LightningCLI; see lightning-w2v {name} --help)",
                                  add_help=False)
        training.add_argument("cli_args", nargs=argparse.REMAINDER)

    demo = sub.add_parser("demo", help="the whole paper in miniature on synthetic data (CPU, about 8 minutes)")
    demo.add_argument("--out", default="demo_out",
                      help="output folder: new, empty, or a demo folder (default: demo_out)")
    demo.add_argument("--quick", action="store_true", help="far fewer steps: a two-minute smoke test of the pipeline")
    demo.add_argument("--seed", type=int, default=0, help="seed of the data, the runs and the report (default: 0)")
    demo.set_defaults(func=_demo)

    data = sub.add_parser("data", help="download, verify or prepare MusicNet and NSynth")
    data.add_argument("action", choices=["download", "verify", "prepare"],
                      help="download (resumable, md5-checked), verify (counts and audio headers), or prepare "
                           "(MusicNet's 16 kHz cache)")
    data.add_argument("dataset", choices=["musicnet", "nsynth"], help="the data set")
    data.add_argument("--root", required=True, help="the data root: holds nsynth-<split>/ or musicnet/")
    data.add_argument("--base-url", default=None,
                      help="download from this mirror (also LIGHTNING_W2V_NSYNTH_URL / LIGHTNING_W2V_MUSICNET_URL)")
    data.add_argument("--splits", nargs="*", default=None, help="NSynth splits to download (default: all three)")
    data.add_argument("--no-keep-archives", action="store_true",
                      help="delete each archive this command downloaded once it is extracted")
    data.add_argument("--check-audio", choices=["sample", "all", "none"], default="sample",
                      help="verify: read the headers of a sample of files per split (default), all of them, or none")
    data.add_argument("--sample-size", type=int, default=200, help="verify: files per split in sample mode")
    data.add_argument("--expect", nargs="+", type=_split_count, default=None, metavar="SPLIT=N",
                      help="verify: expected counts, e.g. test=4096 (default: the official counts)")
    data.add_argument("--cache-dir", default=None,
                      help="prepare: where the 16 kHz cache goes (default: ROOT/cache_16k)")
    data.set_defaults(func=_data)

    analyze = sub.add_parser("analyze", help="the paper's analyses of checkpoints (codebooks, PWCCA)")
    analyze.add_argument("analysis", choices=["codebooks", "pwcca"],
                         help="codebooks: codeword/label co-occurrence (Fig. 1-2); pwcca: CNN vs each layer (Fig. 3)")
    analyze.add_argument("--ckpt", action="append", required=True, help="checkpoint (repeat for PWCCA)")
    analyze.add_argument("--name", action="append", default=None, help="display name per --ckpt (PWCCA)")
    analyze.add_argument("--source", action="append", default=None,
                         choices=["checkpoint", "huggingface", "torchaudio", "fairseq"],
                         help="PWCCA: what each --ckpt is, one per --ckpt (default: all our checkpoints); e.g. "
                              "huggingface for a WavLM, data2vec-audio or MERT folder")
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
    analyze.set_defaults(func=_analyze)

    results = sub.add_parser("results", help="Table 1 from fine-tuning run folders, next to the paper's")
    results.add_argument("run_dirs", nargs="+", help="run folders (searched for test_metrics.json)")
    results.add_argument("--csv", default=None, help="also write the table as CSV here")
    results.add_argument("--markdown", default=None, help="also write the Markdown table here")
    results.add_argument("--wandb-project", default=None, help="also log the table to this W&B project")
    results.set_defaults(func=_results)

    bench = sub.add_parser("bench", help="pre-training throughput, MFU and time shares (see BENCHMARKS.md)")
    bench.add_argument("--preset", default="base", choices=PRESETS, help="model size (default: base)")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    bench.add_argument("--precision", choices=["bf16", "fp32"], default=None,
                       help="default: bf16 autocast on CUDA, fp32 on CPU")
    bench.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    bench.add_argument("--batch-size", type=int, default=None, help="crops per step (default: from --batch-seconds)")
    bench.add_argument("--batch-seconds", type=float, default=None,
                       help="audio per step (default: 87.5 s on CUDA, as fairseq; 2 crops on CPU)")
    bench.add_argument("--crop-seconds", type=float, default=15.6, help="crop length (default: 15.6 s, BASE)")
    bench.add_argument("--share-steps", type=int, default=None, help="instrumented steps for the time shares")
    bench.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s for MFU (default: from the GPU)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the synthetic batch")
    bench.add_argument("--compile", action="store_true", help="torch.compile the model")
    bench.add_argument("--compare-transformers", action="store_true",
                       help="also time transformers' Wav2Vec2ForPreTraining on the same batch")
    bench.add_argument("--no-loader", action="store_true", help="skip the data loader's real-time factor")
    bench.add_argument("--probe-notes", type=int, default=0,
                       help="also time a linear probe on this many notes per split (the default probe: ~420)")
    bench.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    bench.set_defaults(func=_bench)

    check = sub.add_parser("device-check", help="bench, bf16 fit steps and minutes of pre-training on a GPU, as JSON")
    check.add_argument("--out", required=True, help="output folder: new, empty, or one this command wrote")
    check.add_argument("--cpu-smoke", action="store_true",
                       help="every stage with the tiny model and a few steps on the CPU (what the tests run)")
    check.add_argument("--minutes", type=float, default=3.0, help="length of the pre-training stage (default: 3)")
    check.add_argument("--probe-every", type=int, default=200, help="steps between linear probes (default: 200)")
    check.set_defaults(func=_device_check)

    export = sub.add_parser("export", help="export a checkpoint to transformers (and torchaudio)")
    export.add_argument("--ckpt", required=True, help="our pre-training (or fine-tuning) checkpoint")
    export.add_argument("--to", required=True, help="output transformers model folder (new or empty)")
    export.add_argument("--torchaudio", default=None, help="also write a torchaudio state dict here (.pt)")
    export.add_argument("--legacy-weight-norm", action="store_true",
                        help="torchaudio file: weight_g/weight_v names, for old torchaudio versions")
    export.set_defaults(func=_export)

    table = sub.add_parser("probe", help="linear probes of an encoder's layers and the baselines, as a table")
    table.add_argument("--nsynth", required=True, help="NSynth-layout root, holding nsynth-{train,valid,test}/")
    table.add_argument("--ckpt", default=None, help="our checkpoint to probe (default: only the baselines)")
    table.add_argument("--preset", default="tiny", choices=PRESETS,
                       help="architecture of the untrained baseline without --ckpt (default: tiny)")
    table.add_argument("--fit-split", default="train", help="split the regressions are fitted on (default: train)")
    table.add_argument("--eval-split", default="valid", help="split they are scored on (default: valid)")
    table.add_argument("--per-class", type=int, default=4, help="notes of every pitch and family per split")
    table.add_argument("--seed", type=int, default=0, help="which notes, and the untrained encoder's init")
    table.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    table.add_argument("--out", required=True, help="output folder: new, empty, or one this command wrote")
    table.set_defaults(func=_probe)

    probe = sub.add_parser("probe-layers", help="frozen-encoder linear probe on every hidden state")
    _add_probe_options(probe)
    probe.add_argument("--layers", type=int, nargs="*", default=None, help="hidden states (default: all, 0..L)")
    probe.add_argument("--max-epochs", type=int, default=3, help="epochs per probe (default: 3)")
    probe.add_argument("--seed", type=int, default=0, help="seed of the runs and the note selection")
    probe.add_argument("--weighted", action="store_true", help="also probe the learned weighted sum of layers")
    probe.set_defaults(func=_probe_layers)

    efficiency = sub.add_parser("label-efficiency", help="test accuracy against k training notes per class")
    _add_probe_options(efficiency)
    efficiency.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10],
                            help="notes per class (default: 1 2 5 10)")
    efficiency.add_argument("--policies", nargs="+", default=["FE", "FT2"], choices=POLICIES,
                            help="fine-tuning policies (default: FE FT2)")
    efficiency.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, each a run (default: 0)")
    efficiency.add_argument("--max-epochs", type=int, default=5, help="epochs per run (default: 5)")
    efficiency.set_defaults(func=_label_efficiency)
    return parser


def _run(argv: list[str]) -> int:
    if argv and argv[0] in TRAINING_SUBCOMMANDS:
        from ..cli import main as cli_main

        cli_main(argv)
        return 0
    args = build_parser().parse_args(argv)
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a user's error is one ``error:`` line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("-h", "--help", "--version"):
        from ..cli.terminal import configure_threads  # loads torch: not for --help

        configure_threads()
    return run_reporting_errors(lambda: _run(argv))
