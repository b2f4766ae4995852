"""Pre-training benchmark: throughput, MFU, memory, time shares and loader speed.

``lightning-w2v bench --preset base --device cuda --precision bf16 --compare-transformers``
(or :func:`run_benchmark`; see BENCHMARKS.md) runs full pre-training steps of
:class:`Wav2Vec2ForPretraining` on a synthetic batch of equal-length crops and reports:

- steps/s and audio-seconds/s: median step time (forward + backward + AdamW) after warm-up,
  with ``torch.cuda.synchronize()`` around every timed step on CUDA;
- MFU: :func:`pretraining_flops` (analytic, training = 3x forward) over a peak-FLOP/s table;
- peak memory: CUDA ``max_memory_allocated``, or the process's max RSS on CPU;
- time shares: extra steps of the model's own forward and backward with hooks on its
  pieces (:class:`PieceTimer`), each forward and backward timed with a device sync; a
  share is that time over the whole instrumented step;
- the loader real-time factor of one process taking random crops from 16 kHz int16 memmaps;
- optionally ``transformers.Wav2Vec2ForPreTraining`` on the same batch, config, device and
  precision, with numpy masks and negatives drawn per step as its pre-training example does.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..analysis.probes import DEFAULT_PROBE_INTERVAL, pooled_layer_features, probe_all
from ..models import PretrainingObjective, Wav2Vec2Config, Wav2Vec2ForPretraining
from ..models.interop import config_to_huggingface
from ..vocabulary import SAMPLE_RATE

# Dense peak FLOP/s by (device-name substring, precision); first match wins (PCIe before SXM).
PEAK_FLOPS: list[tuple[str, str, float]] = [
    ("H100 PCIe", "bf16", 756e12), ("H100 PCIe", "fp32", 51e12), ("H100 NVL", "bf16", 835e12),
    ("H100 NVL", "fp32", 60e12), ("H100", "bf16", 989e12), ("H100", "fp32", 67e12),
    ("H200", "bf16", 989e12), ("H200", "fp32", 67e12), ("A100", "bf16", 312e12), ("A100", "fp32", 19.5e12),
]


# ----------------------------------------------------------------------------- FLOPs
def pretraining_flops(config: Wav2Vec2Config, num_samples: int, batch: int = 1,
                      objective: PretrainingObjective | None = None) -> dict[str, float]:
    """Analytic FLOPs (multiply-add = 2) of one pre-training step on ``batch`` crops.

    Forward per example, T = CNN frames, E = embed_dim, C = conv_dim:
    - cnn: sum over conv layers of 2 * C_in * kernel * C_out * T_out;
    - feature_projection: 2 * C * E * T;
    - pos_conv: 2 * (E / groups) * kernel * E * T (grouped convolution);
    - transformer: per layer 4 * 2 * E^2 * T (Q, K, V, out) + 2 * 2 * T^2 * E (QK^T and AV)
      + 2 * 2 * E * ffn_dim * T (FFN);
    - quantizer: 2 * C * G*V * T (weight_proj) + 2 * G*V * (D/G) * T (codevector selection);
    - head: 2 * D * F * T (project_q) + 2 * E * F * T (final_proj) + 2 * (1 + K) * F * T
      (cosine logits of the positive and K negatives).
    Norms, activations and softmax are not counted. ``training`` = 3 x ``forward`` (backward
    costs twice the forward), ignoring layerdrop and the first conv's unneeded input grad.
    """
    cfg = config
    objective = objective or PretrainingObjective()
    length, in_ch, cnn = num_samples, 1, 0.0
    for out_ch, kernel, stride in cfg.conv_layers:
        length = (length - kernel) // stride + 1
        cnn += 2.0 * in_ch * kernel * out_ch * length
        in_ch = out_ch
    t, e, c = float(length), float(cfg.embed_dim), float(cfg.conv_dim)
    codes = float(cfg.num_codevector_groups * cfg.num_codevectors_per_group)
    per_layer = 4 * 2 * e * e * t + 2 * 2 * t * t * e + 2 * 2 * e * cfg.ffn_dim * t
    parts = {
        "cnn": cnn,
        "feature_projection": 2 * c * e * t,
        "pos_conv": 2 * (e / cfg.pos_conv_groups) * cfg.pos_conv_kernel * e * t,
        "transformer": cfg.num_layers * per_layer,
        "quantizer": 2 * c * codes * t + 2 * codes * (cfg.codevector_dim / cfg.num_codevector_groups) * t,
        "head": (2 * cfg.codevector_dim * cfg.final_dim * t + 2 * e * cfg.final_dim * t
                 + 2 * (1 + objective.num_negatives) * cfg.final_dim * t),
    }
    out = {k: v * batch for k, v in parts.items()}
    out["forward"] = sum(out.values())
    out["training"] = 3.0 * out["forward"]
    return out


def peak_flops_for(device_name: str, precision: str) -> float | None:
    """Dense peak FLOP/s of a known accelerator, or None (CPUs and unknown GPUs)."""
    for key, prec, value in PEAK_FLOPS:
        if key.lower() in device_name.lower() and prec == precision:
            return value
    return None


# ----------------------------------------------------------------------------- helpers
def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return platform.processor() or "cpu"


def _sync_fn(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _adamw(model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The pre-training optimiser of ``PretrainModule`` (fused on CUDA)."""
    return torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6,
                             weight_decay=0.01, fused=device.type == "cuda")


def _timed(step: Callable[[], None], sync: Callable[[], None]) -> float:
    """Wall time of one call, with a device sync before and after."""
    sync()
    start = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- time shares
class PieceTimer:
    """Times the model's own pieces, forward and backward, during its own training step.

    Hooks on the model's submodules (nothing re-implements its forward): forward pre/post
    hooks on the CNN, the positional convolution, every Transformer layer and the quantizer;
    full backward pre/post hooks on the same modules except the CNN, whose backward is the
    time from the moment the gradient of its output is complete (a tensor hook) to the end
    of ``backward()``, since everything else in the graph depends on its output; and the
    model's own ``compute_mask`` / ``sample_negatives``, wrapped for the step. Every mark
    syncs the device, so pieces do not overlap (steps are slower than the plain ones).
    Whatever the pieces do not cover (projections, mask embedding, logits and losses) is
    ``other``: the step's time minus the pieces.
    """

    def __init__(self, model: Wav2Vec2ForPretraining, sync: Callable[[], None]) -> None:
        self.model, self.sync = model, sync
        backbone = model.backbone
        transformer = backbone.transformer
        self.pieces = {"transformer": [transformer.pos_conv_embed, *transformer.layers], "quantizer": [model.quantizer]}
        self.seconds: dict[str, float] = {}
        self._open: dict[tuple[str, int], float] = {}
        self._handles: list[Any] = []
        self._cnn_grad_at: float | None = None

    def _now(self) -> float:
        self.sync()
        return time.perf_counter()

    def _start(self, name: str, module: torch.nn.Module) -> None:
        self._open[(name, id(module))] = self._now()

    def _stop(self, name: str, module: torch.nn.Module) -> None:
        started = self._open.pop((name, id(module)), None)
        if started is not None:
            self.seconds[name] = self.seconds.get(name, 0.0) + self._now() - started

    def _cnn_output(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self._stop("cnn", module)
        features = output[0]
        if features.requires_grad:
            features.register_hook(self._cnn_grad_ready)

    def _cnn_grad_ready(self, grad: Tensor) -> None:
        self._cnn_grad_at = self._now()

    def __enter__(self) -> "PieceTimer":
        cnn = self.model.backbone.feature_extractor
        self._handles += [cnn.register_forward_pre_hook(lambda m, a: self._start("cnn", m)),
                          cnn.register_forward_hook(self._cnn_output)]
        for name, modules in self.pieces.items():
            for module in modules:
                self._handles += [
                    module.register_forward_pre_hook(lambda m, a, n=name: self._start(n, m)),
                    module.register_forward_hook(lambda m, a, o, n=name: self._stop(n, m)),
                    module.register_full_backward_pre_hook(lambda m, g, n=name: self._start(n, m)),
                    module.register_full_backward_hook(lambda m, gi, go, n=name: self._stop(n, m)),
                ]
        for method in ("compute_mask", "sample_negatives"):
            original = getattr(self.model, method)
            setattr(self.model, method, self._timed_call("masking_negatives", original))
        return self

    def _timed_call(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = self._now()
            out = function(*args, **kwargs)
            self.seconds[name] = self.seconds.get(name, 0.0) + self._now() - started
            return out
        return call

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        for method in ("compute_mask", "sample_negatives"):
            self.model.__dict__.pop(method, None)  # back to the class's own methods

    def step(self, run_step: Callable[[], Tensor], optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One training step (``run_step`` returns the loss); seconds per piece, ``optimizer`` and ``other``."""
        self.seconds, self._cnn_grad_at = {}, None
        started = self._now()
        run_step().backward()
        backward_done = self._now()
        if self._cnn_grad_at is not None:
            self.seconds["cnn"] = self.seconds.get("cnn", 0.0) + backward_done - self._cnn_grad_at
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.seconds["optimizer"] = self._now() - backward_done
        total = self._now() - started
        pieces = {k: self.seconds.get(k, 0.0) for k in ("cnn", "masking_negatives", "transformer", "quantizer")}
        return {**pieces, "optimizer": self.seconds["optimizer"],
                "other": max(total - sum(pieces.values()) - self.seconds["optimizer"], 0.0), "total": total}


def _time_shares(model: Wav2Vec2ForPretraining, optimizer: torch.optim.Optimizer, waveforms: Tensor,
                 precision: str, steps: int) -> tuple[dict[str, float], float]:
    """Median seconds per piece over ``steps`` instrumented steps (on a warm model), as shares of
    the step; returns (shares of cnn / masking_negatives / transformer / quantizer_loss, the
    AdamW step's share). ``quantizer_loss`` is the quantizer plus everything no hook covers."""
    def run_step() -> Tensor:
        with _autocast(waveforms.device, precision):
            out = model(waveforms)
        return out.loss / out.num_masked.clamp_min(1)

    with PieceTimer(model, _sync_fn(waveforms.device)) as timer:
        runs = [timer.step(run_step, optimizer) for _ in range(max(1, steps))]
    for run in runs:  # the loss side: the quantizer with the projections, logits and losses around it
        run["quantizer_loss"] = run.pop("quantizer") + run.pop("other")
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    total = medians.pop("total")
    optimizer_share = medians.pop("optimizer") / total
    return {k: v / total for k, v in medians.items()}, optimizer_share


# ----------------------------------------------------------------------------- linear probe
def _probe_cost(backbone, notes: int, step_seconds: float, device: torch.device, seed: int) -> dict[str, Any]:
    """Seconds of one linear probe on ``notes`` synthetic NSynth-length notes per split (embedding
    both splits, then 2 tasks x every layer's regression), and its share of pre-training time."""
    generator = torch.Generator().manual_seed(seed)
    waves = 0.1 * torch.randn(2, notes, 64_000, generator=generator)  # (fit | eval, N, 4 s)
    labels = [{"pitch": torch.randint(21, 109, (notes,), generator=generator),
               "family": torch.randint(0, 11, (notes,), generator=generator)} for _ in range(2)]
    sync = _sync_fn(device)
    sync()
    started = time.perf_counter()
    features = [pooled_layer_features(backbone, waves[i], device=device) for i in range(2)]
    sync()
    embedded = time.perf_counter()
    probe_all(features[0], features[1], labels[0], labels[1])
    seconds = time.perf_counter() - started
    return {"notes_per_split": notes, "seconds": seconds, "embedding_seconds": embedded - started,
            "regression_seconds": seconds - (embedded - started),
            # its share of pre-training time at LinearProbe's default interval, and at 5000 steps
            f"share_every_{DEFAULT_PROBE_INTERVAL}_steps":
                seconds / (seconds + DEFAULT_PROBE_INTERVAL * step_seconds),
            "share_every_5000_steps": seconds / (seconds + 5000 * step_seconds)}


# ----------------------------------------------------------------------------- data loader
def loader_realtime_factor(crop_seconds: float, batch_size: int, seconds: float = 1.0, num_files: int = 8,
                           file_seconds: float | None = None, seed: int = 0) -> float:
    """Seconds of audio per wall second that one process produces as collated batches.

    Writes ``num_files`` int16 ``.npy`` recordings (the audio cache's format) to a temp dir,
    memory-maps them with ``np.load(mmap_mode="r")`` as a Dataset does, then repeatedly takes
    ``batch_size`` random equal-length crops (random file, random offset), converts each to
    float32 / 32768 and stacks them into one tensor, with torch limited to one thread (as in
    a DataLoader worker). Files were just written, so they are in the page cache.
    """
    rng = np.random.default_rng(seed)
    crop = int(round(crop_seconds * SAMPLE_RATE))
    file_len = int(max(file_seconds or 0.0, 4 * crop_seconds, 20.0) * SAMPLE_RATE)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="w2v_loader_bench_") as tmp:
        for i in range(num_files):
            audio = (rng.standard_normal(file_len) * 3000).clip(-32768, 32767).astype(np.int16)
            np.save(Path(tmp) / f"rec{i}.npy", audio)
        recordings = [np.load(Path(tmp) / f"rec{i}.npy", mmap_mode="r") for i in range(num_files)]
        torch.set_num_threads(1)
        try:
            produced, start, elapsed = 0, time.perf_counter(), 0.0
            while elapsed < seconds or produced == 0:
                items = []
                for _ in range(batch_size):
                    rec = recordings[int(rng.integers(num_files))]
                    offset = int(rng.integers(0, len(rec) - crop + 1))
                    items.append(torch.from_numpy(rec[offset:offset + crop].astype(np.float32) / 32768.0))
                batch = torch.stack(items)
                produced += batch.shape[0] * batch.shape[1]
                elapsed = time.perf_counter() - start
        finally:
            torch.set_num_threads(threads)
            del recordings
    return produced / SAMPLE_RATE / elapsed


# ----------------------------------------------------------------------------- transformers
def _transformers_step(config: Wav2Vec2Config, objective: PretrainingObjective, waveforms: Tensor, precision: str,
                       compile: bool,
                       seed: int) -> Callable[[], None]:
    """One training step of ``transformers.Wav2Vec2ForPreTraining`` as its pre-training
    example runs it: numpy span mask and negatives drawn on the host each step, copied to the
    device, then forward (loss / masked frames), backward and AdamW."""
    import transformers  # optional: the transformers extra
    from transformers.models.wav2vec2.modeling_wav2vec2 import (  # optional: the transformers extra
        _compute_mask_indices,
        _sample_negative_indices,
    )


    device = waveforms.device
    torch.manual_seed(seed)
    hf = transformers.Wav2Vec2ForPreTraining(config_to_huggingface(config, objective)).to(device).train()
    hf.set_gumbel_temperature(objective.temperature_max)
    forward = torch.compile(hf) if compile else hf
    optimizer = _adamw(hf, device)
    batch, frames = waveforms.shape[0], config.num_frames(waveforms.shape[1])

    def step() -> None:
        mask_np = _compute_mask_indices((batch, frames), objective.mask_prob, objective.mask_length,
                                        min_masks=objective.min_masks)
        neg_np = _sample_negative_indices((batch, frames), objective.num_negatives, mask_time_indices=mask_np)
        mask = torch.tensor(mask_np, device=device, dtype=torch.long)
        negatives = torch.tensor(neg_np, device=device, dtype=torch.long)
        with _autocast(device, precision):
            out = forward(waveforms, mask_time_indices=mask, sampled_negative_indices=negatives)
        (out.loss / mask.sum()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


# ----------------------------------------------------------------------------- benchmark
def run_benchmark(
    preset: str = "base",
    device: str = "auto",
    steps: int = 20,
    warmup: int = 3,
    batch_size: int | None = None,
    crop_seconds: float = 15.6,
    batch_seconds: float | None = None,
    precision: str | None = None,
    compile: bool = False,
    compare_transformers: bool = False,
    loader: bool = True,
    seed: int = 0,
    share_steps: int | None = None,
    peak_flops: float | None = None,
    probe_notes: int = 0,
) -> dict[str, Any]:
    """Benchmark pre-training steps; returns the result dict (see module docstring).

    precision: "bf16" (autocast; the CUDA default) or "fp32" (the CPU default).
    batch_size: crops per step; default ``batch_seconds // crop_seconds`` crops, where
        batch_seconds defaults to 87.5 s (fairseq BASE's 1.4M samples per GPU) on CUDA and
        2 crops on CPU. share_steps: instrumented steps for the time shares (default
        min(steps, 5)). peak_flops: override the peak FLOP/s used for MFU. probe_notes: also
        time one linear probe (:class:`~lightning_w2v.callbacks.LinearProbe`) on that many
        4-second notes per split, and its share of pre-training at 1,000 and 5,000 steps apart.
    """
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    precision = precision or ("bf16" if dev.type == "cuda" else "fp32")
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'bf16' or 'fp32', not {precision!r}")
    if batch_size is None:
        cpu_default = batch_seconds is None and dev.type == "cpu"
        batch_size = 2 if cpu_default else max(1, int((batch_seconds or 87.5) // crop_seconds))
    torch.manual_seed(seed)
    np.random.seed(seed)  # transformers' numpy masks and negatives
    sync, load_start = _sync_fn(dev), os.getloadavg()[0]

    model = Wav2Vec2ForPretraining.from_preset(preset).to(dev).train()
    config = model.config
    num_samples = int(round(crop_seconds * SAMPLE_RATE))
    if config.num_frames(num_samples) < model.objective.mask_length:
        raise ValueError(f"crop_seconds={crop_seconds} gives fewer frames than mask_length")
    waveforms = 0.1 * torch.randn(batch_size, num_samples, device=dev)
    forward = torch.compile(model) if compile else model
    optimizer = _adamw(model, dev)

    def step() -> None:
        with _autocast(dev, precision):
            out = forward(waveforms)
        (out.loss / out.num_masked.clamp_min(1)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for _ in range(warmup):
        step()
    times = [_timed(step, sync) for _ in range(steps)]
    peak_memory = (int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda"
                   else int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024)  # KiB on Linux
    median = statistics.median(times)
    audio_per_step = batch_size * num_samples / SAMPLE_RATE

    flops = pretraining_flops(config, num_samples, batch_size, model.objective)
    device_name = _device_name(dev)
    peak = peak_flops or (peak_flops_for(device_name, precision) if dev.type == "cuda" else None)
    mfu = flops["training"] / median / peak if peak else None

    shares, other_share = _time_shares(model, optimizer, waveforms, precision,
                                       share_steps if share_steps is not None else min(steps, 5))

    hf_result = None
    if compare_transformers:  # interleaved with our steps, so both see the same machine load
        hf_step = _transformers_step(config, model.objective, waveforms, precision, compile, seed)
        for _ in range(warmup):
            hf_step()
        pairs = [(_timed(step, sync), _timed(hf_step, sync)) for _ in range(steps)]
        ours_median = statistics.median(p[0] for p in pairs)
        hf_median = statistics.median(p[1] for p in pairs)
        hf_result = {"step_time_s_median": hf_median, "audio_seconds_per_s": audio_per_step / hf_median,
                     "ratio": hf_median / ours_median, "ours_interleaved_step_time_s_median": ours_median,
                     "ratio_of_min_times": min(p[1] for p in pairs) / min(p[0] for p in pairs)}
        del hf_step
    probe = _probe_cost(model.backbone, probe_notes, median, dev, seed) if probe_notes else None
    num_parameters = sum(p.numel() for p in model.parameters())
    model = forward = optimizer = None  # free the model's memory before the loader test
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    rtf = loader_realtime_factor(crop_seconds, batch_size, seed=seed) if loader else None
    return {
        "device": dev.type, "device_name": device_name, "torch_version": torch.__version__,
        "preset": preset, "precision": precision, "compile": compile, "batch_size": batch_size,
        "crop_seconds": crop_seconds, "steps": steps, "warmup": warmup,
        "num_parameters": num_parameters,
        "step_time_s_median": median, "step_time_s_min": min(times), "step_time_s_all": times,
        "steps_per_s": 1.0 / median, "audio_seconds_per_s": audio_per_step / median,
        "model_flops_per_step": flops["training"],
        "model_flops_forward_per_audio_second": flops["forward"] / audio_per_step,
        "model_flops_forward_breakdown": {k: v for k, v in flops.items() if k not in ("forward", "training")},
        "peak_flops": peak, "mfu": mfu, "peak_memory_bytes": peak_memory,
        "peak_memory_kind": "cuda_max_memory_allocated" if dev.type == "cuda" else "process_max_rss",
        "time_share": shares, "time_share_other": other_share,
        "time_share_method": ("the model's own eager step with hooks on its pieces (CNN | masking+negatives | "
                              "positional conv + Transformer layers | quantizer + the rest: projections, "
                              "logits, losses), forward and backward each timed with a device sync; shares "
                              "of the whole instrumented step; time_share_other is the AdamW step"),
        "loader_realtime_factor_per_worker": rtf,
        "linear_probe": probe,
        "transformers": hf_result,
        "load_average_1m": [load_start, os.getloadavg()[0]],  # other processes' load, start / end
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def format_table(result: dict[str, Any]) -> str:
    """Human-readable two-column table of a :func:`run_benchmark` result."""
    def fmt(v: Any) -> str:
        return "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    rows = [(k, result[k]) for k in ("device_name", "torch_version", "preset", "precision", "compile",
                                     "batch_size", "crop_seconds", "steps", "step_time_s_median",
                                     "steps_per_s", "audio_seconds_per_s", "model_flops_per_step", "mfu")]
    rows.append(("peak_memory_MiB", result["peak_memory_bytes"] / 2**20))
    rows += [(f"share_{k}", v) for k, v in result["time_share"].items()]
    rows += [("share_other(AdamW)", result["time_share_other"]),
             ("loader_rtf_per_worker", result["loader_realtime_factor_per_worker"])]
    if result.get("linear_probe"):
        rows += [(f"probe_{k}", v) for k, v in result["linear_probe"].items()]
    if result["transformers"]:
        rows += [(f"transformers_{k}", v) for k, v in result["transformers"].items()]
    width = max(len(k) for k, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 20}"]
    lines += [f"{k:<{width}}  {fmt(v)}" for k, v in rows]
    return "\n".join(lines)
