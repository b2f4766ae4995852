"""``lightning-w2v demo``: the whole paper in miniature on synthetic data, on a CPU.

1. write the synthetic MusicNet- and NSynth-format data sets;
2. pre-train the ``tiny`` model (``conf/pretrain/demo.yaml``);
3. fine-tune FE, FT1 and FT2 on pitch and instrument family, then test (``conf/finetune/``);
   FE also from an untrained encoder of the same shape, the ablation row;
4. transcribe the demo MusicNet's test pieces (FE frame probes, ``conf/finetune/demo_transcription``)
   from the pre-trained encoder, the untrained one and log-mel frames;
5. write Table 1 in miniature, the transcription table and piano roll, the codebook figures
   (Fig. 1-2), the PWCCA curves (Fig. 3) and a short report.

Every training run goes through the same LightningCLI and YAML files a user runs by hand.
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import torch

from ..analysis import runners
from ..analysis.plots import plot_probe_curves
from ..analysis.results import aggregate, collect_runs, format_markdown, format_transcription, write_csv
from ..data.demo_modules import ensure_demo_musicnet, ensure_demo_nsynth
from ..data.nsynth import probe_note_records
from ..files import atomic_write_bytes, atomic_write_text, claim_folder
from ..files.ownership import only_names
from ..runner import run_cli
from ..tasks.policies import get_policy
from ..vocabulary import NSYNTH_TASKS as TASKS
from ..vocabulary import POLICIES
from .runs import finetune_args, run_finetune

# a smoke test of the pipeline: few steps, and each fine-tuning sees a few batches of each split
QUICK = {"pretrain_steps": 20, "finetune_epochs": 1, "finetune_batches": {"train": 8, "val": 3, "test": 3},
         "transcription_epochs": 2}
# The paper's learning rates (the policy table: 1e-3 head for FE; 1e-5 encoder / 1e-4 head for
# FT1/FT2) are for a 95M model trained to convergence over many epochs; the minutes-long
# miniature scales them up 10x (head) and 100x (encoder) so that each policy visibly learns.
DEMO_LR_SCALE = {"head_lr": 10, "encoder_lr": 100}


def demo_learning_rates(policy: str) -> dict[str, float]:
    """The policy's default LRs (``tasks.policies``) times :data:`DEMO_LR_SCALE`."""
    defaults = get_policy(policy)
    rates = {"head_lr": defaults.head_lr, "encoder_lr": defaults.encoder_lr}
    return {name: round(rate * DEMO_LR_SCALE[name], 12) for name, rate in rates.items() if rate is not None}
# FE runs the frozen encoder once and then trains the head on cached pooled features, so
# many epochs cost little; early stopping (patience 10 on val/loss) ends it.
DEMO_EPOCHS = {"FE": 60, "FT1": 3, "FT2": 4}  # FT1 back-propagates through the CNN: the costliest
# The ablation rows: the same tiny architecture, untrained ("w2v2 random" in the table), so
# the report shows what the miniature's pre-training adds over a random encoder.
RANDOM_BASELINE_POLICIES = ("FE",)
DEMO_FOLDER_NAMES = ("data", "runs", "figures", "REPORT.md", "results.csv")  # what 0.1's demo wrote
# The transcription rows: FE frame probes of the pre-trained encoder, the untrained one, and log-mel frames
TRANSCRIPTION_ENCODERS = {"music": None, "random": "random", "logmel": "logmel"}
# Measured on an idle 2-core CPU (README, "Two commands"); a machine shared with one busy process
# stays within twice that, since the threads follow the free cores (lightning_w2v.runner.terminal).
EXPECTED_MINUTES = {"full": "4 minutes", "quick": "1 minute"}


def _banner(step: str, started: float) -> None:
    print(f"\n=== [{time.perf_counter() - started:6.0f} s] {step}", flush=True)


def _fit(args: list[str]) -> None:
    run_cli(["fit", *args])


def pretrain(out: Path, data: Path, quick: bool, seed: int, probe: bool = True) -> Path:
    """The demo's pre-training; ``probe=False`` skips the linear probes (which take about a
    quarter of its time; they run in eval mode without gradients and restore the RNG they use)."""
    root = out / "runs" / "pretrain"
    args = ["--config", "pretrain/demo", f"--data.init_args.root={data / 'musicnet'}",
            f"--probe.notes={data / 'nsynth' if probe else 'null'}", f"--trainer.default_root_dir={root}",
            f"--seed_everything={seed}"]
    if quick:
        args += [f"--trainer.max_steps={QUICK['pretrain_steps']}", "--probe.per_class=1"]
    _fit(args)
    return root / "checkpoints" / "last.ckpt"


def finetune(out: Path, data: Path, encoder: Path | None, task: str, policy: str, quick: bool, seed: int) -> Path:
    """Fine-tune and test from the ``encoder`` checkpoint, or (None) from a random tiny encoder."""
    run_dir = out / "runs" / "finetune" / f"{task}_{policy.lower()}{'' if encoder else '_random'}"
    extra = [f"--model.init_args.{name}={value}" for name, value in demo_learning_rates(policy).items()]
    epochs = QUICK["finetune_epochs"] if quick else DEMO_EPOCHS[policy]
    if quick:
        extra += [f"--trainer.limit_{split}_batches={n}" for split, n in QUICK["finetune_batches"].items()]
    run_finetune(finetune_args(encoder, data / "nsynth", task, policy, run_dir, seed=seed, max_epochs=epochs,
                               config="demo", extra_args=extra), run_dir)
    return run_dir


def transcribe(out: Path, data: Path, encoder: Path, name: str, quick: bool, seed: int) -> Path:
    """An FE frame probe on the demo MusicNet: from the pre-trained ``encoder`` (``music``), an untrained one
    of its shape (``random``) or log-mel frames (``logmel``)."""
    run_dir = out / "runs" / "transcription" / f"{name}_fe"
    source = TRANSCRIPTION_ENCODERS[name]
    extra = [f"--model.init_args.{k}={v}" for k, v in demo_learning_rates("FE").items()]
    args = finetune_args(None if source else encoder, data / "musicnet", "musicnet_transcription", "FE", run_dir,
                         seed=seed, source=source or "checkpoint", config="demo", extra_args=extra,
                         max_epochs=QUICK["transcription_epochs"] if quick else None)
    run_finetune(args, run_dir)
    return run_dir


def run_demo(out_dir: str | Path = "demo_out", quick: bool = False, seed: int = 0) -> dict:
    started = time.perf_counter()
    expected = EXPECTED_MINUTES["quick" if quick else "full"]
    print(f"lightning-w2v demo{' --quick' if quick else ''}: this should take about {expected} on a 2-core CPU "
          f"({torch.get_num_threads()} torch thread(s) here)", flush=True)
    out = claim_folder(out_dir, "demo", adopt=only_names(DEMO_FOLDER_NAMES),
                       hint="pass a new or empty folder as --out").resolve()
    data = out / "data"
    figures = out / "figures"

    _banner("1/6 writing the synthetic MusicNet and NSynth data sets", started)
    ensure_demo_musicnet(data / "musicnet", seed=seed)
    ensure_demo_nsynth(data / "nsynth", seed=seed)

    _banner("2/6 pre-training the tiny wav2vec 2.0 on demo MusicNet", started)
    encoder = pretrain(out, data, quick, seed)

    _banner("3/6 fine-tuning FE / FT1 / FT2 on pitch and instrument, then testing", started)
    run_dirs = {}
    for task in TASKS:
        for policy in POLICIES:
            print(f"--- {task} / {policy}", flush=True)
            run_dirs[(task, policy)] = finetune(out, data, encoder, task, policy, quick, seed)
        for policy in RANDOM_BASELINE_POLICIES:
            print(f"--- {task} / {policy}, random-init encoder (ablation)", flush=True)
            finetune(out, data, None, task, policy, quick, seed)

    _banner("4/6 transcribing the demo MusicNet: FE frame probes of the pre-trained and untrained encoders and "
            "log-mel frames", started)
    transcription_runs = {}
    for name in TRANSCRIPTION_ENCODERS:
        print(f"--- transcription / FE / {name}", flush=True)
        transcription_runs[name] = transcribe(out, data, encoder, name, quick, seed)

    _banner("5/6 analyses: codebooks (Fig. 1-2) and PWCCA (Fig. 3)", started)
    codebooks = runners.codebook_analysis(encoder, data / "nsynth", figures, split="test")
    pwcca_models = {"pre-trained": encoder}
    for policy in ("FT1", "FT2"):
        pwcca_models[f"{policy} (pitch)"] = run_dirs[("pitch", policy)] / "checkpoints" / "last.ckpt"
    curves = runners.pwcca_analysis(list(pwcca_models.values()), data / "musicnet", figures,
                                    names=list(pwcca_models), fraction=1.0)

    _banner("6/6 results tables and report", started)
    rows = aggregate(collect_runs([out / "runs" / "finetune"]))
    table = format_markdown(rows)
    write_csv(rows, out / "results.csv")
    transcription_rows = aggregate(collect_runs([out / "runs" / "transcription"]))
    write_csv(transcription_rows, out / "transcription.csv")
    transcription = format_transcription(transcription_rows)
    _copy_figure(transcription_runs["music"] / "piano_roll.png", figures / "piano_roll.png")
    probes = _probe_figure(out / "runs" / "pretrain" / "probe", figures)
    probes["num_notes"] = len(probe_note_records(data / "nsynth", "valid", per_class=1 if quick else 4))
    report = _report(out, table, transcription, codebooks, curves, probes, time.perf_counter() - started, quick)
    atomic_write_text(out / "REPORT.md", report)
    print("\n" + table + "\n" + transcription)
    print(f"\nDone in {time.perf_counter() - started:.0f} s. Everything is under {out}:")
    for path in ("REPORT.md", "results.csv", "transcription.csv", "figures/", "runs/pretrain/checkpoints/last.ckpt",
                 "runs/finetune/<task>_<policy>/", "runs/transcription/<encoder>_fe/", "data/"):
        print(f"  {out / path}")
    return {"table": table, "transcription": transcription, "codebooks": codebooks, "pwcca": curves}


def _copy_figure(png: Path, to: Path) -> None:
    """A run's figure (PNG and its PDF) into the demo's figures."""
    to.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".pdf"):
        atomic_write_bytes(to.with_suffix(suffix), png.with_suffix(suffix).read_bytes())


def _read_probes(folder: Path) -> tuple[dict[str, tuple[list[int], list[float]]], dict[str, dict[str, float]]]:
    """The pre-training run's probe curves (best layer) and baselines, from its CSVs."""
    curves: dict[str, tuple[list[int], list[float]]] = {}
    with (folder / "probe.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["feature"] == "best":
                steps, accuracies = curves.setdefault(row["task"], ([], []))
                steps.append(int(row["step"]))
                accuracies.append(float(row["accuracy"]))
    baselines: dict[str, dict[str, float]] = {}
    with (folder / "probe_baselines.csv").open() as fh:
        for row in csv.DictReader(fh):
            baselines.setdefault(row["baseline"], {})[row["task"]] = float(row["accuracy"])
    return curves, baselines


def _probe_figure(folder: Path, figures: Path) -> dict:
    curves, baselines = _read_probes(folder)
    plot_probe_curves(curves, baselines, figures / "probe_curves.png",
                      title="linear probes on the demo's valid notes during pre-training")
    return {"curves": curves, "baselines": baselines}


def _verdict(probes: dict, num_notes: int) -> str:
    """What the miniature shows, in plain words, from its own numbers: a change counts only when
    it exceeds two standard errors of a difference of two accuracies on ``num_notes`` notes."""
    parts = []
    for task, (steps, accuracies) in probes["curves"].items():
        final, untrained = accuracies[-1], probes["baselines"]["untrained"][task]
        logmel = probes["baselines"]["logmel"][task]
        middle = (final + untrained) / 2
        noise = 2 * math.sqrt(2 * middle * (1 - middle) / max(1, num_notes))
        change = ("beats" if final - untrained > noise else
                  "falls below" if untrained - final > noise else "is within the noise of")
        parts.append(f"{task}: {100 * final:.1f}% after {steps[-1]} steps, which {change} the untrained encoder "
                     f"({100 * untrained:.1f}%; the noise on {num_notes} notes is ±{100 * noise:.0f} points); "
                     f"log-mel statistics reach {100 * logmel:.1f}%")
    return "; ".join(parts) + "."


def _report(out: Path, table: str, transcription: str, codebooks: dict, curves: dict, probes: dict,
            seconds: float, quick: bool) -> str:
    joint, untrained = codebooks["joint"], codebooks["untrained"]["joint"]
    lines = [
        "# lightning_w2v demo report",
        "",
        "All data here is SYNTHETIC (see data/*/README.txt): a miniature of the paper's pipeline, "
        "not a reproduction of its numbers." + (" Run with --quick: a smoke test only." if quick else ""),
        f"Wall time: {seconds:.0f} s.",
        "",
        "## Does the miniature's pre-training learn pitch and family?",
        "",
        "Linear probes of the encoder during pre-training (fitted on train notes, scored on the "
        "valid split's other instruments), against the same probe of an untrained encoder, of "
        "log-mel statistics, and the majority class: " + _verdict(probes, probes["num_notes"]),
        "",
        "![probe curves](figures/probe_curves.png)",
        "",
        "## Table 1 in miniature (test accuracy %, ours next to the paper's)",
        "",
        "\"w2v2 music\" is the encoder pre-trained here; \"w2v2 random\" is the same tiny "
        "architecture untrained, the ablation that shows what this pre-training adds.",
        "",
        table,
        "",
        "## Polyphonic transcription in miniature (the demo MusicNet's test pieces, FE frame probes)",
        "",
        "A linear head on every frame of the pre-trained encoder (\"w2v2 music\"), of the untrained one "
        "(\"w2v2 random\") and of 128 log-mel bands (\"log-mel\"), trained on the training pieces' windows "
        "and tested on whole pieces. The tiny model's frames are 64 wide, a narrow channel for 88 keys: "
        "log-mel frames show what a linear frame head can read off the audio itself.",
        "",
        transcription,
        "",
        "![piano roll](figures/piano_roll.png)",
        "",
        "## Codebooks (Fig. 1-2): joint codeword vs label on the test split",
        "",
        "| label | NMI | NMI, untrained model | NMI, shuffled labels | purity | purity, untrained | "
        "purity, shuffled |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("pitch", "family"):
        s, u = joint[kind], untrained[kind]
        lines.append(f"| {kind} | {s['nmi']:.3f} | {u['nmi']:.3f} | {s['nmi_shuffled_mean']:.3f} | "
                     f"{s['purity']:.3f} | {u['purity']:.3f} | {s['purity_shuffled_mean']:.3f} |")
    usage = joint["usage"]
    lines += ["", "Codes used: " + ", ".join(f"{k.replace('_', ' ')} {v:.3g}" if isinstance(v, float) else
                                               f"{k.replace('_', ' ')} {v}" for k, v in usage.items()), "",
              "Figures: figures/codebook_pitch.png, figures/codebook_family.png, "
              "figures/codebook_baselines_nmi.png", "",
              "## PWCCA between the CNN output and each Transformer layer (Fig. 3)", ""]
    for name, values in curves.items():
        lines.append(f"- {name}: " + ", ".join(f"layer {i}: {v:.3f}" for i, v in enumerate(values, start=1)))
    lines += ["", "Figure: figures/pwcca.png", ""]
    return "\n".join(lines)
