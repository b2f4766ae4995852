"""``lightning-w2v bench``: pre-training throughput, MFU and time shares (BENCHMARKS.md)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..vocabulary import PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="pre-training throughput, MFU and time shares (see BENCHMARKS.md)")
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
    bench.add_argument("--whole-recording", type=float, default=None, metavar="SECONDS",
                       help="instead: the memory and real-time factor of testing one whole recording of this "
                            "many seconds in overlapping windows, as frame-level tasks do")
    bench.add_argument("--feature-store", type=int, default=None, metavar="CLIPS",
                       help="instead: two identical FE runs over this many synthetic 5 s clips, the first filling "
                            "the disk feature store and the second reading it (see BENCHMARKS.md)")
    bench.add_argument("--nsynth-index", type=Path, default=None, metavar="ROOT",
                       help="instead: NSynth's setup at full size (a sparse layout written under ROOT once), cold "
                            "and from its index, and 8 workers' memory (see BENCHMARKS.md)")
    bench.add_argument("--root", type=Path, default=Path("bench_feature_store"),
                       help="--feature-store's folder for its clips, cache and runs (default: ./bench_feature_store)")
    bench.add_argument("--encoder", default="random:base",
                       help="--feature-store's encoder, SOURCE[:PATH] as in evaluate (default: random:base)")
    bench.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..files import atomic_write_text

    if args.feature_store is not None:
        from ..workflows.bench_feature_store import feature_store_benchmark, format_feature_store

        result = feature_store_benchmark(args.root, clips=args.feature_store, encoder=args.encoder)
        print(format_feature_store(result), flush=True)
        if args.json is not None:
            atomic_write_text(args.json, json.dumps(result, indent=2))
        return 0

    if args.nsynth_index is not None:
        from ..workflows.bench_nsynth_index import format_nsynth_index, nsynth_index_benchmark

        result = nsynth_index_benchmark(args.nsynth_index)
        print(format_nsynth_index(result), flush=True)
        if args.json is not None:
            atomic_write_text(args.json, json.dumps(result, indent=2))
        return 0

    if args.whole_recording is not None:
        from ..workflows.bench_recording import format_recording, whole_recording_benchmark

        result = whole_recording_benchmark(args.whole_recording, preset=args.preset, device=args.device,
                                           seed=args.seed)
        print(format_recording(result), flush=True)
        if args.json is not None:
            atomic_write_text(args.json, json.dumps(result, indent=2))
        return 0

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
