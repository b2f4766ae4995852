"""``lightning-w2v probe``: the linear-probe table of an encoder and its baselines on one NSynth folder.

The same notes, features and regression as :class:`~lightning_w2v.callbacks.LinearProbe`
uses during pre-training (fitted on ``fit_split``, scored on ``eval_split``), so the table
and the curves are comparable. Rows: every layer of the encoder (if one is given: any
source, e.g. our checkpoint, CREPE or PESTO) and of an untrained encoder of the same
architecture (seeded; wav2vec 2.0 family only), the log-mel statistics, and the majority
class. Writes ``probe_table.csv`` and ``probe_table.md``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis.probes import (
    label_arrays,
    logmel_statistics,
    majority_accuracy,
    pooled_layer_features,
    probe_accuracy,
    probe_all,
)
from ..data.nsynth import probe_notes
from ..encoders import SOURCES, EncoderSpec, load_encoder, source_of, untrained_like
from ..files import atomic_write_csv, atomic_write_text, claim_folder
from ..files.ownership import only_names
from ..models import Wav2Vec2Backbone, preset_config

COLUMNS = ("model", "feature", "pitch", "family")


def probe_table(nsynth_root: str | Path, out_dir: str | Path, ckpt: str | Path | None = None, preset: str = "tiny",
                fit_split: str = "train", eval_split: str = "valid", per_class: int = 4, seed: int = 0,
                iterations: int = 100, device: str = "cpu", source: str = "checkpoint",
                hop_ms: float | None = None) -> list[dict[str, Any]]:
    """Rows ``{model, feature, pitch, family}`` (accuracies); see the module docstring.

    ``ckpt`` and ``source``: the encoder to probe (see ``EncoderSpec``; ``source`` alone for those
    that need no path, e.g. ``pesto``); neither: only the baselines."""
    trained = spec = None
    if ckpt is not None or not SOURCES[source].needs_path:
        spec = EncoderSpec(source=source, path=None if ckpt is None else str(ckpt), hop_ms=hop_ms)
        trained = load_encoder(spec, key="--ckpt")
    twin_of = trained if trained is not None else Wav2Vec2Backbone(preset_config(preset))
    fit_records, fit_waves = probe_notes(nsynth_root, fit_split, per_class, seed)
    eval_records, eval_waves = probe_notes(nsynth_root, eval_split, per_class, seed)
    fit_labels, eval_labels = label_arrays(fit_records), label_arrays(eval_records)
    out = claim_folder(out_dir, "analysis", adopt=only_names(("probe_table.*",)), hint="pass a new or empty --out")

    rows: list[dict[str, Any]] = []
    # an untrained twin only where the architecture has an initialisation of its own (wav2vec 2.0 family)
    encoders = [("untrained", untrained_like(twin_of, seed))] if isinstance(twin_of, Wav2Vec2Backbone) else []
    if trained is not None:
        encoders.insert(0, (source_of(spec).figure_name(), trained))
    for name, backbone in encoders:
        backbone = backbone.to(device)
        results = probe_all(pooled_layer_features(backbone, fit_waves, device=device),
                            pooled_layer_features(backbone, eval_waves, device=device), fit_labels, eval_labels,
                            iterations)
        rows += [{"model": name, "feature": feature, "pitch": results["pitch"][feature],
                  "family": results["family"][feature]} for feature in results["pitch"]]
    mel_fit, mel_eval = logmel_statistics(fit_waves), logmel_statistics(eval_waves)
    rows.append({"model": "log-mel statistics", "feature": "mean+std of 128 bands",
                 **{t: probe_accuracy(mel_fit, fit_labels[t], mel_eval, eval_labels[t], iterations)
                    for t in ("pitch", "family")}})
    rows.append({"model": "majority class", "feature": "-",
                 **{t: majority_accuracy(fit_labels[t], eval_labels[t]) for t in ("pitch", "family")}})

    atomic_write_csv(out / "probe_table.csv", COLUMNS, ([r[c] for c in COLUMNS] for r in rows))
    header = (f"Linear probes on {nsynth_root}: fitted on {len(fit_records)} {fit_split} notes, scored on "
              f"{len(eval_records)} {eval_split} notes (accuracy %).\n\n")
    table = "| model | feature | pitch | family |\n|---|---|---|---|\n" + "".join(
        f"| {r['model']} | {r['feature']} | {100 * r['pitch']:.1f} | {100 * r['family']:.1f} |\n" for r in rows)
    atomic_write_text(out / "probe_table.md", header + table)
    return rows
