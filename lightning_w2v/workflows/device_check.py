"""``lightning-w2v device-check``: everything a first GPU run should show, in about 8 minutes, as JSON.

1. ``bench``: BASE, bf16, eager and compiled, each against transformers'
   ``Wav2Vec2ForPreTraining`` on the same batch (audio-s/s, MFU, memory, time shares);
2. one bf16-mixed fit step of each module on the device: BASE pre-training, and FT2
   fine-tuning of a BASE encoder, through the same CLI and YAMLs as a user's run;
3. a few minutes of pre-training on MusicNet-format data written on the machine, with the
   linear probes on (every ``probe_every`` steps): steps, audio-s/s, validation loss and
   accuracy, the probe curves against their baselines, and the probes' share of the time.

Each stage's result is written to ``--out`` (``device_check.json``) as soon as it is done, so a
run stopped by a time limit keeps what it measured; a stage that fails records its error and
the next one runs. ``--cpu-smoke`` runs every stage with the tiny preset, a few steps and fp32
or bf16 on the CPU (compilation skipped): the test suite runs it, so the script cannot rot.
"""
from __future__ import annotations

import json
import platform
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.demo import write_demo_musicnet
from ..data.demo_modules import ensure_demo_data, ensure_demo_nsynth
from ..files import atomic_write_text, claim_folder
from ..runner import run_cli
from .bench import run_benchmark

RESULT_NAME = "device_check.json"


def _stage(results: dict[str, Any], name: str, path: Path, function: Callable[[], Any]) -> None:
    started = time.perf_counter()
    try:
        results[name] = {"ok": True, "result": function()}
    except Exception as error:  # noqa: BLE001 - a failed stage is a result too; the next one runs
        results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}",
                         "traceback": traceback.format_exc(limit=8)}
    results[name]["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(path, json.dumps(results, indent=2, default=str))
    print(f"[device-check] {name}: {'ok' if results[name]['ok'] else 'FAILED'} "
          f"({results[name]['seconds']} s)", flush=True)


def _bench(smoke: bool, compile: bool, device: str) -> dict[str, Any]:
    kwargs = dict(preset="tiny", device="cpu", steps=2, warmup=1, batch_size=2, crop_seconds=1.0,
                  precision="fp32", loader=False) if smoke else dict(preset="base", device=device, steps=20,
                                                                      warmup=5, precision="bf16")
    return run_benchmark(compile=compile, compare_transformers=True, **kwargs)


def _fit_steps(work: Path, smoke: bool, accelerator: str) -> dict[str, Any]:
    data = work / "data"
    device_args = [f"--trainer.accelerator={accelerator}", "--trainer.precision=bf16-mixed", "--trainer.devices=1"]
    preset = "tiny" if smoke else "base"
    pretrain = run_cli(["fit", "--config", "pretrain/demo", f"--data.init_args.root={data / 'musicnet'}",
                         f"--model.init_args.preset={preset}", "--probe.notes=null", "--trainer.max_steps=1",
                         "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={work / 'fit_pretrain'}",
                         "--trainer.enable_progress_bar=false", *device_args])
    finetune = run_cli(["fit", "--config", "finetune/demo_pitch", "--config", "finetune/policy/ft2",
                         "--model.init_args.encoder.source=random", "--model.init_args.encoder.path=null",
                         f"--model.init_args.encoder.preset={preset}", f"--data.init_args.root={data / 'nsynth'}",
                         "--trainer.max_steps=1", "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
                         f"--trainer.default_root_dir={work / 'fit_finetune'}", "--trainer.enable_progress_bar=false",
                         *device_args])

    def summary(cli) -> dict[str, Any]:
        metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
        finite = all(v == v and abs(v) != float("inf") for v in metrics.values())
        return {"global_step": cli.trainer.global_step, "precision": str(cli.trainer.precision),
                "device": str(cli.model.device), "finite": finite, "metrics": metrics}

    return {"pretrain": summary(pretrain), "finetune": summary(finetune)}


def _pretraining(work: Path, smoke: bool, accelerator: str, minutes: float, probe_every: int) -> dict[str, Any]:
    data = work / "data"
    preset, steps = ("tiny", 6) if smoke else ("base", 100_000)
    args = ["fit", "--config", "pretrain/demo", f"--data.init_args.root={work / 'musicnet_large'}",
            f"--model.init_args.preset={preset}", f"--probe.notes={data / 'nsynth'}",
            f"--probe.every_n_steps={3 if smoke else probe_every}", f"--probe.per_class={1 if smoke else 4}",
            f"--trainer.max_steps={steps}",
            f"--trainer.max_time=00:00:{int(minutes):02d}:{int(round(minutes % 1 * 60)):02d}",
            f"--trainer.accelerator={accelerator}", "--trainer.devices=1",
            "--trainer.precision=" + ("32-true" if smoke else "bf16-mixed"),
            "--model.init_args.warmup_steps=" + ("2" if smoke else "500"),
            "--data.init_args.max_sample_size=" + ("48000" if smoke else "250000"),
            "--data.init_args.segment_seconds=" + ("6.0" if smoke else "20.0"),
            "--data.init_args.hop_seconds=" + ("3.0" if smoke else "10.0"),
            "--data.init_args.max_batch_seconds=" + ("6.0" if smoke else "87.5"),
            "--data.init_args.num_workers=" + ("0" if smoke else "8"),
            f"--trainer.default_root_dir={work / 'pretraining'}", "--trainer.enable_progress_bar=false",
            "--trainer.log_every_n_steps=" + ("1" if smoke else "20")]
    started = time.perf_counter()
    cli = run_cli(args)
    seconds = time.perf_counter() - started
    probe = next(c for c in cli.trainer.callbacks if type(c).__name__ == "LinearProbe")
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    return {"preset": preset, "steps": cli.trainer.global_step, "seconds": round(seconds, 1),
            "probe_seconds": round(probe.seconds, 1), "probe_share": probe.seconds / max(seconds, 1e-9),
            "probe_curves": {task: dict(zip(*probe.curves(task))) for task in ("pitch", "family")},
            "probe_baselines": probe.baseline_results, "last_metrics": metrics}


def device_check(out_dir: str | Path, cpu_smoke: bool = False, minutes: float = 3.0,
                 probe_every: int = 200) -> dict[str, Any]:
    """Run the stages (module docstring); returns the results, also written to ``out_dir``."""
    out = claim_folder(out_dir, "device-check", hint="pass a new or empty --out")
    path = out / RESULT_NAME
    cuda = torch.cuda.is_available() and not cpu_smoke
    accelerator, device = ("gpu", "cuda") if cuda else ("cpu", "cpu")
    results: dict[str, Any] = {
        "mode": "cpu-smoke" if cpu_smoke else "device",
        "torch": torch.__version__, "python": platform.python_version(),
        "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
    }
    work = out / "work"
    ensure_demo_nsynth(work / "data" / "nsynth")
    ensure_demo_data(work / "data" / "musicnet", lambda root, seed: write_demo_musicnet(root, seed, num_train=2,
                                                                                       num_test=1),
                     "demo-musicnet", "musicnet/train_data")
    ensure_demo_data(work / "musicnet_large", lambda root, seed: write_demo_musicnet(
        root, seed, num_train=2 if cpu_smoke else 24, num_test=1 if cpu_smoke else 3,
        seconds=(8.0, 10.0) if cpu_smoke else (60.0, 90.0)), "demo-musicnet", "musicnet/train_data")
    _stage(results, "bench_eager", path, lambda: _bench(cpu_smoke, False, device))
    if not cpu_smoke:
        _stage(results, "bench_compiled", path, lambda: _bench(cpu_smoke, True, device))
    _stage(results, "fit_step_bf16", path, lambda: _fit_steps(work, cpu_smoke, accelerator))
    _stage(results, "pretraining", path, lambda: _pretraining(work, cpu_smoke, accelerator, 0.5 if cpu_smoke
                                                               else minutes, probe_every))
    return results
