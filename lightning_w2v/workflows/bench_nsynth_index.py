"""``lightning-w2v bench --nsynth-index ROOT``: NSynth's data setup at full size, cold and from its index.

It writes (once) a full-size NSynth layout under ROOT: ``examples.json`` of 289,205 / 12,678 /
4,096 notes with every field the distributed files have, and a WAV file per note whose 44-byte
header is real and whose 128,000 bytes of samples are a hole (a sparse file: the layout costs a few
GB of blocks for headers only; the samples read as silence). Then, each in a fresh process:

- ``setup("fit")`` with no index (the index files are removed first): parse, check every header,
  save the index;
- ``setup("fit")`` again, from the index;
- the second setup, then 8 DataLoader workers reading ``batches`` batches of the training split:
  each worker's unique memory (USS) after its first batch and at the end, which stays flat when the
  notes are arrays that no reference count touches.

Times are wall clock of ``setup`` alone; RSS is the process's after it (Linux ``VmRSS``) and its
peak (``VmHWM``), the interpreter and torch included.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..data.formats import FAMILIES, NSYNTH_COUNTS, NSYNTH_NUM_SAMPLES, NSYNTH_SAMPLE_RATE, QUALITIES, SOURCES
from ..data.note_table import index_paths


def _header() -> bytes:
    """A real 16-bit mono 16 kHz WAV header for NSynth's 64,000 samples."""
    data = 2 * NSYNTH_NUM_SAMPLES
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 1, NSYNTH_SAMPLE_RATE,
                       2 * NSYNTH_SAMPLE_RATE, 2, 16, b"data", data)


def write_full_size_layout(root: Path, counts: dict[str, int] = NSYNTH_COUNTS) -> Path:
    """The layout described in the module docstring (skipped where a split's examples.json exists)."""
    header, size = _header(), 44 + 2 * NSYNTH_NUM_SAMPLES
    for split, count in counts.items():
        split_dir = root / f"nsynth-{split}"
        if (split_dir / "examples.json").is_file():
            continue
        (split_dir / "audio").mkdir(parents=True, exist_ok=True)
        examples = {}
        for n in range(count):
            family, source = n % len(FAMILIES), (n // len(FAMILIES)) % len(SOURCES)
            instrument, pitch, velocity = n // 1000, 9 + n % 112, (25, 50, 75, 100, 127)[n % 5]
            name = f"{FAMILIES[family]}_{SOURCES[source]}_{instrument:03d}-{pitch:03d}-{velocity:03d}-{n:06d}"
            qualities = [int((n >> k) & 1) for k in range(len(QUALITIES))]
            examples[name] = {
                "note": n, "note_str": name, "instrument": instrument,
                "instrument_str": f"{FAMILIES[family]}_{SOURCES[source]}_{instrument:03d}", "pitch": pitch,
                "velocity": velocity, "sample_rate": NSYNTH_SAMPLE_RATE, "qualities": qualities,
                "qualities_str": [q for q, on in zip(QUALITIES, qualities) if on],
                "instrument_family": family, "instrument_family_str": FAMILIES[family],
                "instrument_source": source, "instrument_source_str": SOURCES[source]}
            with open(split_dir / "audio" / f"{name}.wav", "wb") as out:
                out.write(header)
                out.truncate(size)  # the samples: a hole
        (split_dir / "examples.json").write_text(json.dumps(examples))
    return root


def _status_mib(field: str, pid: str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _unique_mib(pid: int) -> float:
    """A process's unique set size (its private pages), from ``/proc/PID/smaps_rollup``."""
    private = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            private += int(line.split()[1])
    return private / 1024


def _children() -> list[int]:
    me = Path("/proc/self").resolve().name
    return [int(p) for p in Path(f"/proc/{me}/task/{me}/children").read_text().split()]


def _measure(root: str, workers: int, batches: int) -> dict[str, Any]:
    """In this (fresh) process: time setup("fit"), then optionally read batches with workers."""
    import torch  # noqa: F401 - imported before the clock starts, as any run has it

    from ..data import NSynthDataModule

    data = NSynthDataModule(root, task="pitch", batch_size=32, num_workers=workers, persistent_workers=False,
                            pin_memory=False)
    start = time.perf_counter()
    data.setup("fit")
    result: dict[str, Any] = {"setup_seconds": time.perf_counter() - start, "rss_mib": _status_mib("VmRSS"),
                              "peak_rss_mib": _status_mib("VmHWM"), "train_notes": len(data.datasets["train"])}
    if workers:
        before = set(_children())
        loader = iter(data.train_dataloader())
        next(loader)
        children = [pid for pid in _children() if pid not in before]  # this loader's workers
        first = [_unique_mib(pid) for pid in children]
        for _ in range(batches - 1):
            next(loader)
        last = [_unique_mib(pid) for pid in children]
        result.update({"workers": len(children), "worker_uss_first_mib": first, "worker_uss_last_mib": last,
                       "batches": batches, "main_rss_after_mib": _status_mib("VmRSS")})
    return result


def nsynth_index_benchmark(root: str | Path, workers: int = 8, batches: int = 200) -> dict[str, Any]:
    """The three measurements of the module docstring; returns them."""
    root = Path(root)
    start = time.perf_counter()
    write_full_size_layout(root)
    written = time.perf_counter() - start
    for split in NSYNTH_COUNTS:
        for path in index_paths(root / f"nsynth-{split}"):
            path.unlink(missing_ok=True)

    def measured(workers_: int) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", __name__, str(root), str(workers_), str(batches)], check=True,
                              capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    return {"layout_seconds": written, "cold": measured(0), "indexed": measured(0), "workers": measured(workers)}


def format_nsynth_index(result: dict[str, Any]) -> str:
    lines = ["| NSynth setup('fit') | time | RSS after | peak RSS |", "|---|---|---|---|"]
    for name in ("cold", "indexed"):
        r = result[name]
        lines.append(f"| {name} | {r['setup_seconds']:.1f} s | {r['rss_mib']:.0f} MiB | {r['peak_rss_mib']:.0f} MiB |")
    w = result["workers"]
    lines.append(f"{w['workers']} workers, {w['batches']} batches of 32: worker USS after the first batch "
                 f"{min(w['worker_uss_first_mib']):.0f}-{max(w['worker_uss_first_mib']):.0f} MiB, at the end "
                 f"{min(w['worker_uss_last_mib']):.0f}-{max(w['worker_uss_last_mib']):.0f} MiB; main RSS "
                 f"{w['main_rss_after_mib']:.0f} MiB")
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
