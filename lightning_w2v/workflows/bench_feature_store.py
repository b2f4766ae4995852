"""``lightning-w2v bench --feature-store CLIPS``: what the disk feature store saves a second FE run.

On a SYNTHETIC labelled folder of ``clips`` clips (a ``single.csv`` manifest: one class each, half
train, a quarter valid and test), the same FE fine-tuning (the ``manifest`` task's YAML and the
FE fragment, as a user types it) runs twice, each in a fresh process as a user's two runs would:
the first with an empty feature store, extracting every slice's features as its first epoch
passes; the second finding them all on disk. Each is timed inside its process from the runner's
start (data setup) to its test metrics, after the interpreter has started and imported the
package; the 16 kHz audio cache is built before either. The two runs' test metrics must agree
(the same features, the same seed).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..data.sets.manifest import ManifestDataModule, write_synthetic_manifests
from ..files import claim_folder
from ..runner import run_cli
from .evaluation import EncoderChoice
from .runs import finetune_args


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def feature_store_benchmark(root: str | Path, clips: int = 1000, seconds: float = 5.0, encoder: str = "random:base",
                            max_epochs: int = 10, batch_size: int = 32) -> dict[str, Any]:
    """Two identical FE runs over ``clips`` synthetic clips under ``root``; returns their times and metrics."""
    root = claim_folder(root, "bench-feature-store", hint="pass a new or empty --root")  # what is removed below
    manifest = root / "data" / "single.csv"
    if not manifest.is_file():
        write_synthetic_manifests(root / "data", clips=clips, seconds=seconds)
    data = ManifestDataModule(str(manifest), progress=False)
    data.prepare_data()  # the 16 kHz audio cache, shared by both runs and not timed
    data.setup()
    store = data.feature_store_root
    shutil.rmtree(store, ignore_errors=True)
    choice = EncoderChoice.parse(encoder)
    runs = []
    for name in ("first", "second"):
        run_dir = root / "runs" / name
        shutil.rmtree(run_dir, ignore_errors=True)
        args = finetune_args(choice.path, manifest, "manifest", "FE", run_dir, max_epochs=max_epochs,
                             batch_size=batch_size, config="full", source=choice.source,
                             random_preset=choice.preset or "tiny",
                             extra_args=["--trainer.logger=false", "--trainer.enable_progress_bar=false",
                                         "--data.init_args.num_workers=0", "--trainer.accelerator=cpu",
                                         "--trainer.precision=32-true"])
        run_dir.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", __name__, str(run_dir), json.dumps(args)], check=True)
        seconds_taken = json.loads((run_dir / "bench_seconds.json").read_text())["seconds"]
        metrics = json.loads((run_dir / "test_metrics.json").read_text())["metrics"]
        runs.append({"run": name, "seconds": seconds_taken, "metrics": metrics, "store_bytes": _folder_bytes(store)})
    first, second = runs
    return {"clips": clips, "clip_seconds": seconds, "encoder": encoder, "max_epochs": max_epochs,
            "slices": {split: len(dataset) for split, dataset in data.datasets.items()},
            "runs": runs, "speedup": first["seconds"] / second["seconds"],
            "same_test_metrics": first["metrics"] == second["metrics"]}


def format_feature_store(result: dict[str, Any]) -> str:
    lines = [f"FE on {result['clips']} synthetic clips of {result['clip_seconds']:g} s, encoder {result['encoder']}, "
             f"{result['max_epochs']} epochs",
             "| run | data setup to test metrics | feature store on disk | test/acc |", "|---|---|---|---|"]
    for run in result["runs"]:
        lines.append(f"| {run['run']} | {run['seconds']:.1f} s | {run['store_bytes'] / 2**20:.1f} MiB | "
                     f"{100 * run['metrics'].get('test/acc', float('nan')):.1f}% |")
    lines.append(f"second run {result['speedup']:.1f}x faster; identical test metrics: {result['same_test_metrics']}")
    return "\n".join(lines)


def _timed_run(run_dir: Path, args: list[str]) -> None:
    """One run in this (fresh) process, timed from the runner's start to its test metrics."""
    start = time.perf_counter()
    run_cli(args)
    (run_dir / "bench_seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    _timed_run(Path(sys.argv[1]), json.loads(sys.argv[2]))
