"""The small-scale pre-training study of EXPERIMENTS.md: run it, or summarise what has run.

    python experiments/study.py run [--only NAME ...]   # each run once; finished runs are skipped
    python experiments/study.py summary                 # table + figure from experiments/study/
    python experiments/study.py transcription           # the in-domain transcription probes, then their table

Every run is one `lightning-w2v fit --config pretrain/demo ...` command (printed, and kept in
its folder): the demo's synthetic MusicNet, linear probes of pitch and family on the demo's
NSynth (fitted on train, scored on valid), a preset and an objective. Its probe curves, the
baselines, the training metrics and the command are copied to experiments/study/<name>/,
which is small enough to commit. The data go to study_data/ (synthetic, re-made on demand).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "study"
DATA = Path("study_data").resolve()
RUNS_DIR = Path("study_runs").resolve()

# objective variants: model_overrides on top of the demo's masking (spans of 4, p 0.5, 10 negatives)
VARIANTS = {
    "fairseq": {"feature_grad_mult": 0.1, "feature_penalty_weight": 10.0},   # BASE's objective
    "penalty1": {"feature_grad_mult": 0.1, "feature_penalty_weight": 1.0},
    "penalty0": {"feature_grad_mult": 0.1, "feature_penalty_weight": 0.0},   # transformers' loss
    "frozen_cnn": {"feature_grad_mult": 0.0},                                # the demo before this study
}
COLOURS = dict(zip(VARIANTS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))  # one per objective, every panel
PLAN = {  # preset -> (steps, probe interval, variants)
    "tiny": (500, 100, ["fairseq", "penalty1", "penalty0", "frozen_cnn"]),
    "small": (2000, 250, ["fairseq", "penalty0", "frozen_cnn"]),
}
SEEDS = (0, 1)


def runs() -> list[tuple[str, list[str]]]:
    out = []
    for preset, (steps, every, variants) in PLAN.items():
        for variant in variants:
            for seed in SEEDS:
                name = f"{preset}-{variant}-seed{seed}"
                overrides = {"mask_length": 4, "mask_prob": 0.5, "num_negatives": 10, **VARIANTS[variant]}
                args = ["fit", "--config", "pretrain/demo", f"--model.init_args.preset={preset}",
                        "--model.init_args.model_overrides=" + json.dumps(overrides),
                        f"--data.init_args.root={DATA / 'musicnet'}", f"--probe.notes={DATA / 'nsynth'}",
                        f"--probe.every_n_steps={every}", f"--trainer.max_steps={steps}",
                        f"--seed_everything={seed}", f"--data.init_args.seed={seed}",
                        f"--trainer.default_root_dir={RUNS_DIR / name}", "--trainer.enable_progress_bar=false"]
                out.append((name, args))
    return out


def run(only: list[str] | None) -> None:
    for name, args in runs():
        dest = OUT / name
        if (only and name not in only) or (dest / "probe.csv").is_file():
            continue
        print(f"=== {name}: lightning-w2v {' '.join(args)}", flush=True)
        started = time.time()
        shutil.rmtree(RUNS_DIR / name, ignore_errors=True)  # an unfinished earlier attempt (ours)
        done = subprocess.run([sys.executable, "-m", "lightning_w2v", *args], capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], flush=True)
            raise SystemExit(f"{name} failed")
        run_dir = RUNS_DIR / name
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(run_dir / "probe" / "probe.csv", dest / "probe.csv.tmp")
        shutil.copy(run_dir / "probe" / "probe_baselines.csv", dest / "probe_baselines.csv")
        shutil.copy(next(run_dir.glob("logs/version_*/metrics.csv")), dest / "metrics.csv")
        (dest / "command.txt").write_text("lightning-w2v " + " ".join(args) + "\n")
        (dest / "wall_seconds.txt").write_text(f"{time.time() - started:.0f}\n")
        (dest / "probe.csv.tmp").rename(dest / "probe.csv")  # last: marks the run as done
        print(f"    done in {time.time() - started:.0f} s", flush=True)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def summary() -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    curves: dict = defaultdict(list)  # (preset, variant, task) -> [(steps, accs) per seed]
    baselines: dict = defaultdict(list)  # (preset, baseline, task) -> [acc per seed]
    for folder in sorted(OUT.glob("*-seed*")):
        if not (folder / "probe.csv").is_file():
            continue
        preset, variant, _ = folder.name.split("-")
        rows = [r for r in _read(folder / "probe.csv") if r["feature"] == "best"]
        for task in ("pitch", "family"):
            mine = sorted((int(r["step"]), float(r["accuracy"])) for r in rows if r["task"] == task)
            curves[(preset, variant, task)].append(mine)
        for r in _read(folder / "probe_baselines.csv"):
            baselines[(preset, r["baseline"], r["task"])].append(float(r["accuracy"]))
    lines = ["| preset | objective | pitch, step 0 | pitch, end | family, step 0 | family, end | "
             "end, each seed (pitch / family) |", "|---|---|---|---|---|---|---|"]
    for (preset, variant, task), seeds in sorted(curves.items()):
        if task != "pitch":
            continue
        fam = curves[(preset, variant, "family")]
        def cell(series, index):
            values = [100 * s[index][1] for s in series]
            return f"{np.mean(values):.1f}" + (f" ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else "")
        each = ", ".join(f"{100 * p[-1][1]:.0f} / {100 * f[-1][1]:.0f}" for p, f in zip(seeds, fam))
        lines.append(f"| {preset} | {variant} | {cell(seeds, 0)} | {cell(seeds, -1)} | {cell(fam, 0)} | "
                     f"{cell(fam, -1)} | {each} |")
    lines += ["", "| preset | baseline | pitch | family |", "|---|---|---|---|"]
    for (preset, baseline, task), values in sorted(baselines.items()):
        if task == "pitch":
            fam = baselines[(preset, baseline, "family")]
            lines.append(f"| {preset} | {baseline} | {100 * np.mean(values):.1f} | {100 * np.mean(fam):.1f} |")
    table = "\n".join(lines)
    (OUT / "summary.md").write_text(table + "\n")
    print(table)

    presets = sorted({k[0] for k in curves})
    fig, axes = plt.subplots(len(presets), 2, figsize=(7, 2.6 * len(presets)), squeeze=False, sharey="col")
    for row, preset in enumerate(presets):
        for col, task in enumerate(("pitch", "family")):
            ax = axes[row][col]
            for variant in VARIANTS:
                series = curves.get((preset, variant, task))
                if not series:
                    continue
                steps = [s for s, _ in series[0]]
                accs = np.mean([[a for _, a in s] for s in series], axis=0)
                ax.plot(steps, 100 * accs, marker="o", ms=3, label=variant, color=COLOURS[variant])
            for baseline, style in (("untrained", ":"), ("logmel", "--"), ("majority", "-.")):
                values = baselines.get((preset, baseline, task))
                if values:
                    ax.axhline(100 * np.mean(values), color="grey", ls=style, lw=1, label=f"{baseline} (baseline)")
            ax.set_title(f"{preset}: {'MIDI pitch' if task == 'pitch' else 'instrument family'}", fontsize=9)
            ax.set_xlabel("pre-training step", fontsize=8)
            ax.set_ylabel("probe accuracy, valid (%)", fontsize=8)
            ax.set_ylim(0, 100)
            ax.tick_params(labelsize=7)
    legend: dict = {}  # every variant and baseline drawn in any panel, once
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    for suffix in ("png", "pdf"):
        fig.savefig(OUT / f"probe_curves.{suffix}", dpi=200)
    print(f"written {OUT / 'summary.md'}, {OUT / 'probe_curves.png'}")


# ----------------------------------------------------------------------------- the in-domain transcription question
# FE frame probes on the MusicNet-format data the encoders were pre-trained on: the pre-trained encoder against
# the untrained one of the same seed (the random source under the same seed is the pre-training's step 0) and
# log-mel frames. The pre-training runs are the frozen_cnn ones (the demo's objective).
TRANSCRIPTION_OBJECTIVE = "frozen_cnn"
TRANSCRIPTION_ENCODERS = ("pretrained", "untrained", "logmel")
TRANSCRIPTION_OUT = OUT / "transcription"


def _checkpoint(name: str) -> Path:
    """The pre-training run's last checkpoint, re-running the run into study_runs/ when it is not there
    (its committed curves under experiments/study/ are left as they are)."""
    ckpt = RUNS_DIR / name / "checkpoints" / "last.ckpt"
    if ckpt.is_file():
        return ckpt
    args = dict(runs())[name]
    print(f"=== {name} (for its checkpoint): lightning-w2v {' '.join(args)}", flush=True)
    shutil.rmtree(RUNS_DIR / name, ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "lightning_w2v", *args], capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], flush=True)
        raise SystemExit(f"{name} failed")
    return ckpt


def transcription() -> None:
    for preset in PLAN:
        for seed in SEEDS:
            pretraining = f"{preset}-{TRANSCRIPTION_OBJECTIVE}-seed{seed}"
            for encoder in TRANSCRIPTION_ENCODERS:
                # log-mel frames do not depend on the preset: one run per seed, shared by both presets
                name = f"{preset}-{encoder}-seed{seed}" if encoder != "logmel" else f"logmel-seed{seed}"
                dest = TRANSCRIPTION_OUT / name
                if (dest / "test_metrics.json").is_file():
                    continue
                if encoder == "pretrained":
                    source = ["--model.init_args.encoder.source=checkpoint",
                              f"--model.init_args.encoder.path={_checkpoint(pretraining)}"]
                elif encoder == "untrained":
                    source = ["--model.init_args.encoder.source=random", f"--model.init_args.encoder.preset={preset}"]
                else:
                    source = ["--model.init_args.encoder.source=logmel"]
                run_dir = RUNS_DIR / "transcription" / name
                args = ["fit", "--config", "finetune/demo_transcription", "--config", "finetune/policy/fe", *source,
                        f"--data.init_args.root={DATA / 'musicnet'}", "--model.init_args.head_lr=0.01",
                        f"--seed_everything={seed}", f"--data.init_args.seed={seed}", f"--model.init_args.seed={seed}",
                        f"--trainer.default_root_dir={run_dir}", "--trainer.enable_progress_bar=false"]
                print(f"=== transcription {name}: lightning-w2v {' '.join(args)}", flush=True)
                started = time.time()
                shutil.rmtree(run_dir, ignore_errors=True)
                done = subprocess.run([sys.executable, "-m", "lightning_w2v", *args], capture_output=True, text=True)
                if done.returncode != 0:
                    print(done.stderr[-3000:], flush=True)
                    raise SystemExit(f"transcription {name} failed")
                dest.mkdir(parents=True, exist_ok=True)
                (dest / "command.txt").write_text("lightning-w2v " + " ".join(args) + "\n")
                (dest / "wall_seconds.txt").write_text(f"{time.time() - started:.0f}\n")
                shutil.copy(run_dir / "test_metrics.json", dest / "test_metrics.json.tmp")
                (dest / "test_metrics.json.tmp").rename(dest / "test_metrics.json")  # last: marks it done
    transcription_summary()


def transcription_summary() -> None:
    import numpy as np

    metrics = ("frame_ap", "frame_f1", "note_f1", "instrument_map")
    results: dict = defaultdict(list)  # (row, metric) -> [value per seed]
    for folder in sorted(TRANSCRIPTION_OUT.glob("*-seed*")):
        file = folder / "test_metrics.json"
        if not file.is_file():
            continue
        row = folder.name.rsplit("-seed", 1)[0]
        values = json.loads(file.read_text())["metrics"]
        for metric in metrics:
            results[(row, metric)].append(100 * values[f"test/{metric}"])
    rows = sorted({row for row, _ in results}, key=lambda r: (r == "logmel", r))
    lines = ["| encoder | " + " | ".join(metrics) + " | frame AP, each seed |", "|---|" + "---|" * (len(metrics) + 1)]
    for row in rows:
        cells = []
        for metric in metrics:
            values = results[(row, metric)]
            cells.append(f"{np.mean(values):.1f}" + (f" ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else ""))
        each = ", ".join(f"{v:.1f}" for v in results[(row, "frame_ap")])
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {each} |")
    table = "\n".join(lines)
    (TRANSCRIPTION_OUT / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "summary", "transcription"])
    parser.add_argument("--only", nargs="*", default=None, help="run only these names")
    args = parser.parse_args()
    {"run": lambda: run(args.only), "summary": summary, "transcription": transcription}[args.action]()
