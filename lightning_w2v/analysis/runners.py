"""The paper's analyses run on checkpoints and data: codebook co-occurrence (Fig. 1-2), PWCCA (Fig. 3).

These glue the pure functions of this package to the model and the data sets; the
``lightning-w2v analyze`` command and the notebooks call them.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..data.audio import read_audio, resample
from ..data.formats import FAMILIES
from ..data.musicnet import find_musicnet_dir, list_recordings
from ..data.nsynth import load_nsynth_split
from ..encoders import (
    EncoderSpec,
    load_encoder,
    load_pretraining_model,
    require_quantizer,
    source_of,
    untrained_like,
)
from ..errors import ConfigError, DataError
from ..files import claim_folder
from ..files.ownership import only_names
from ..models import Wav2Vec2ForPretraining
from ..models.encoder import Encoder
from ..vocabulary import SAMPLE_RATE
from .codebooks import (
    cooccurrence,
    joint_codes,
    normalise,
    sort_for_display,
    specialisation_summary,
)
from .plots import plot_cooccurrence_heatmap, plot_grouped_bars, plot_pwcca_curves
from .pwcca import pwcca

log = logging.getLogger(__name__)


# What an analysis folder of 0.1 (before folder markers) held: such folders are adopted.
ANALYSIS_FILE_NAMES = ("codebook_*", "pwcca.*", "wandb")


def claim_analysis_folder(out_dir: str | Path) -> Path:
    """``--out``: new, empty, or an analysis folder of ours (never a user's folder)."""
    return claim_folder(out_dir, "analysis", adopt=only_names(ANALYSIS_FILE_NAMES),
                        hint="pass a new or empty folder as --out")


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()
def nsynth_codes(model: Wav2Vec2ForPretraining, records: list[dict], batch_size: int = 16,
                 device: str = "cpu") -> dict[str, np.ndarray]:
    """Codeword of every frame of every note: eval-mode quantizer, no masking, no noise.

    Returns codes (N, G), pitch (N,) MIDI, family (N,), note (N,) index into the records.
    """
    model = model.to(device).eval()
    codes, pitch, family, note = [], [], [], []
    for offset, group in enumerate(_batches(records, batch_size)):
        waves = torch.from_numpy(np.stack([read_audio(r["path"])[0] for r in group])).to(device)
        batch_codes, _ = model.quantize(waves)  # (B, T, G)
        frames = batch_codes.shape[1]
        codes.append(batch_codes.reshape(-1, batch_codes.shape[-1]).cpu().numpy())
        pitch.append(np.repeat([r["pitch"] for r in group], frames))
        family.append(np.repeat([r["instrument_family"] for r in group], frames))
        note.append(np.repeat(np.arange(len(group)) + offset * batch_size, frames))
    return {"codes": np.concatenate(codes), "pitch": np.concatenate(pitch), "family": np.concatenate(family),
            "note": np.concatenate(note), "num_entries": np.array(model.config.num_codevectors_per_group)}


def _joint_scores(summary: dict) -> dict[str, dict[str, float]]:
    return {kind: {"nmi": summary["joint"][kind]["nmi"], "purity": summary["joint"][kind]["purity"]}
            for kind in ("pitch", "family")}


def codebook_analysis(ckpt: str | Path, nsynth_root: str | Path, out_dir: str | Path, split: str = "test",
                      max_notes: int | None = None, device: str = "cpu", logger=None,
                      baseline_ckpt: str | Path | None = None, baseline_seed: int = 0) -> dict:
    """Fig. 1-2: co-occurrence of codewords with pitch and family; matrices, heatmaps, summary JSON.

    Beside the shuffled-label baseline, the summary's ``untrained`` block holds the joint
    code's NMI and purity of an untrained model of the same architecture (``baseline_seed``),
    or of ``baseline_ckpt``: how much of the specialisation was there before any training.
    """
    model = load_pretraining_model(ckpt, "--ckpt")
    baseline = (load_pretraining_model(baseline_ckpt, "--baseline-ckpt") if baseline_ckpt
                else untrained_like(model, baseline_seed))
    records = load_nsynth_split(nsynth_root, split)[:max_notes]
    data = nsynth_codes(model, records, device=device)
    out = claim_analysis_folder(out_dir)  # only once the checkpoints and the notes were read
    codes, num_entries = data["codes"], int(data["num_entries"])
    labels = {"pitch": data["pitch"], "family": data["family"]}
    summary = specialisation_summary(codes, labels, num_entries)
    summary["meta"].update({"checkpoint": str(ckpt), "split": split, "frames": int(len(codes))})
    # What the codes show before any training: the same analysis of the untrained model (or a given one).
    reference = nsynth_codes(baseline, records, device=device)
    reference_summary = specialisation_summary(reference["codes"], {"pitch": reference["pitch"],
                                                                     "family": reference["family"]}, num_entries)
    summary["untrained"] = {"source": str(baseline_ckpt) if baseline_ckpt else f"untrained, seed {baseline_seed}",
                            "joint": _joint_scores(reference_summary)}

    joint = joint_codes(codes, num_entries)
    num_joint = num_entries ** codes.shape[1]
    label_spaces = {
        "pitch": (data["pitch"], 121, [str(m) for m in range(121)]),
        "family": (data["family"], len(FAMILIES), list(FAMILIES)),
    }
    matrices, images = {}, []
    for kind, (values, num_labels, names) in label_spaces.items():
        counts = cooccurrence(joint, values, num_joint, num_labels)  # (codes, labels)
        used_labels = np.flatnonzero(counts.sum(0))
        counts = counts[:, used_labels]
        matrices[f"{kind}_counts"] = counts
        matrices[f"{kind}_labels"] = used_labels
        display, order = sort_for_display(normalise(counts, axis=1))  # P(label | code), used codes only
        matrices[f"{kind}_code_order"] = order
        axis = "MIDI pitch" if kind == "pitch" else "instrument family"
        png = plot_cooccurrence_heatmap(display, [names[i] for i in used_labels],
                                        f"{axis} given the joint codeword, NSynth {split}",
                                        out / f"codebook_{kind}.png", ylabel=axis,
                                        colorbar_label=f"P({kind} | codeword)")
        images.append((kind, png))
    joint, untrained = _joint_scores(summary), summary["untrained"]["joint"]
    for score, name in (("nmi", "NMI"), ("purity", "purity")):
        bars = {kind: {"pre-trained": joint[kind][score], summary["untrained"]["source"]: untrained[kind][score],
                       "shuffled labels": summary["joint"][kind][f"{score}_shuffled_mean"]}
                for kind in ("pitch", "family")}
        images.append((f"baselines_{score}", plot_grouped_bars(
            bars, f"joint codeword {name}", out / f"codebook_baselines_{score}.png",
            title=f"codeword vs label {name}, {split} split", ylim=(0, 1))))
    np.savez_compressed(out / "codebook_cooccurrence.npz", **matrices)
    (out / "codebook_summary.json").write_text(json.dumps(summary, indent=2))
    _log_images(logger, "analysis/codebooks", images)
    return summary


def _middle_crops(musicnet_root: str | Path, fraction: float, seconds: float,
                  seed: int) -> list[tuple[str, np.ndarray]]:
    """``seconds`` of 16 kHz audio from the middle of a seeded ``fraction`` of all recordings."""
    base = find_musicnet_dir(musicnet_root)
    recordings = list_recordings(base, "train") + list_recordings(base, "test")
    rng = np.random.default_rng(seed)
    count = max(1, round(fraction * len(recordings)))
    chosen = sorted(rng.choice(len(recordings), size=count, replace=False))
    crops, length = [], int(seconds * SAMPLE_RATE)
    for index in chosen:
        rec_id, path = recordings[index]
        wave, sr = read_audio(path)
        wave = resample(wave, sr, SAMPLE_RATE)
        start = max(0, (len(wave) - length) // 2)
        crop = wave[start:start + length]
        if len(crop) == length:
            crops.append((rec_id, crop))
    return crops


@torch.no_grad()
def layer_representations(encoder: Encoder, crops: Sequence[np.ndarray], batch_size: int = 8,
                          device: str = "cpu") -> tuple[np.ndarray, list[np.ndarray]]:
    """The feature encoder's output (N, C) and every layer's output [(N, E)] * L (hidden states 1..L),
    frames stacked; ConfigError for an encoder without a separate feature encoder."""
    if not encoder.has_frontend:
        raise ConfigError(f"PWCCA compares each layer with the feature encoder's output; a {type(encoder).__name__} "
                          "has no separate feature encoder")
    encoder = encoder.to(device).eval()
    cnn, layers = [], None
    for group in _batches(list(crops), batch_size):
        out = encoder(torch.from_numpy(np.stack(group)).to(device), output_hidden_states=True)
        features = out.frontend  # (B, T, C)
        cnn.append(features.reshape(-1, features.shape[-1]).cpu().numpy())
        hidden = [h.reshape(-1, h.shape[-1]).cpu().numpy() for h in out.hidden_states[1:]]
        layers = [[h] for h in hidden] if layers is None else [acc + [h] for acc, h in zip(layers, hidden)]
    return np.concatenate(cnn), [np.concatenate(parts) for parts in layers]


def pwcca_analysis(ckpts: Sequence[str | Path], musicnet_root: str | Path, out_dir: str | Path,
                   names: Sequence[str] | None = None, fraction: float = 0.5, seconds: float = 4.0,
                   seed: int = 0, device: str = "cpu", logger=None,
                   sources: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Fig. 3: PWCCA between the CNN output and each Transformer layer, per model.

    ``sources``: one ``EncoderSpec`` source per entry of ``ckpts`` (default: all our
    checkpoints), so a transformers folder of any family or a torchaudio bundle compares too.
    """
    sources = list(sources) if sources else ["checkpoint"] * len(ckpts)
    if len(sources) != len(ckpts):
        raise ConfigError(f"--source is given {len(sources)} time(s) for {len(ckpts)} --ckpt: give one per --ckpt, "
                          "or none (all our checkpoints)")
    specs = [EncoderSpec(source=source, path=str(ckpt)) for source, ckpt in zip(sources, ckpts)]
    backbones = [load_encoder(spec, key="--ckpt") for spec in specs]  # all checked before any work
    crops = [wave for _, wave in _middle_crops(musicnet_root, fraction, seconds, seed)]
    if not crops:
        raise DataError(f"no MusicNet recording under {musicnet_root} is {seconds} s long")
    out = claim_analysis_folder(out_dir)
    names = list(names) if names else [source_of(spec).figure_name() for spec in specs]
    curves: dict[str, list[float]] = {}
    for name, backbone in zip(names, backbones):
        cnn, layers = layer_representations(backbone, crops, device=device)
        curves[name] = [pwcca(layer, cnn) for layer in layers]
        log.info("PWCCA %s: %s", name, ", ".join(f"{v:.3f}" for v in curves[name]))
    with open(out / "pwcca.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "layer", "pwcca", "frames", "recordings"])
        for name, values in curves.items():
            for layer, value in enumerate(values, start=1):
                writer.writerow([name, layer, f"{value:.6f}", len(cnn), len(crops)])
    png = plot_pwcca_curves(curves, out / "pwcca.png")
    _log_images(logger, "analysis/pwcca", [("pwcca", png)])
    return curves


def _log_images(logger, prefix: str, images: list[tuple[str, Path]]) -> None:
    if logger is None:
        return
    import wandb  # only with --wandb-project: slow to import, and runs without W&B never need it

    logger.log({f"{prefix}/{name}": wandb.Image(str(path)) for name, path in images})


def check_codebook_sources(ckpts: Sequence[str | Path], sources: Sequence[str] | None) -> None:
    """ConfigError unless every encoder named for a codebook analysis has a quantizer."""
    require_quantizer([EncoderSpec(source=source, path=str(ckpt))
                       for ckpt, source in zip(ckpts, sources or ["checkpoint"] * len(ckpts))])
