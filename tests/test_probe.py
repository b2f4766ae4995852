"""Linear probes during pre-training: logged at step 0 and every N steps, and exactly what an
independent probe of the untrained encoder gives at step 0."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_w2v.analysis.probes import label_arrays, layer_names, probe_accuracy
from lightning_w2v.data.nsynth import probe_notes
from lightning_w2v.runner import run_cli as cli_main
from lightning_w2v.tasks import PretrainModule

OVERRIDES = {"mask_length": 4, "mask_prob": 0.5, "num_negatives": 10, "feature_grad_mult": 0.0}


@pytest.fixture(scope="module")
def probed_run(demo_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("probed") / "run"
    cli_main(["fit", "--config", "pretrain/demo", f"--data.init_args.root={demo_root / 'musicnet'}",
              f"--probe.notes={demo_root / 'nsynth'}", "--probe.every_n_steps=10", "--probe.per_class=2",
              "--trainer.max_steps=20", f"--trainer.default_root_dir={run}", "--trainer.enable_progress_bar=false"])
    return run


def _logged(run: Path) -> dict[int, dict[str, float]]:
    with next(run.glob("logs/version_*/metrics.csv")).open() as fh:
        rows = list(csv.DictReader(fh))
    out: dict[int, dict[str, float]] = {}
    for row in rows:
        values = {k: float(v) for k, v in row.items() if k.startswith("probe/") and v}
        if values:
            out.setdefault(int(row["step"]), {}).update(values)
    return out


def test_probes_are_logged_at_step_0_and_every_n_steps_with_the_baselines(probed_run):
    logged = _logged(probed_run)
    assert sorted(logged) == [0, 10, 20]
    names = [f"probe/{task}/{feature}" for task in ("pitch", "family") for feature in [*layer_names(3), "best"]]
    for step, values in logged.items():
        assert set(names) <= set(values), step
        for task in ("pitch", "family"):
            assert values[f"probe/{task}/best"] == max(values[f"probe/{task}/{f}"] for f in layer_names(3))
            for baseline in ("untrained", "logmel", "majority"):
                assert 0.0 <= values[f"probe/{task}/baseline_{baseline}"] <= 1.0
    with (probed_run / "probe" / "probe.csv").open() as fh:
        assert {int(r["step"]) for r in csv.DictReader(fh)} == {0, 10, 20}
    assert (probed_run / "probe" / "probe_baselines.csv").is_file()


def test_the_step_0_probe_equals_an_independent_probe_of_the_untrained_encoder(probed_run, demo_root):
    pl.seed_everything(0)  # as the CLI does before it builds the model
    backbone = PretrainModule(preset="tiny", model_overrides=OVERRIDES, lr=2e-3, warmup_steps=30,
                              clip_grad_norm=10.0).model.backbone.eval()

    def pooled(split: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        records, waves = probe_notes(demo_root / "nsynth", split, per_class=2)
        with torch.no_grad():
            cnn = torch.stack([backbone.extract_features(w[None])[0].mean(dim=1)[0] for w in waves])
            hidden = [backbone(w[None], output_hidden_states=True).hidden_states for w in waves]
        features = {"cnn": cnn}
        for i in range(len(hidden[0])):
            features[f"layer_{i}"] = torch.stack([h[i].mean(dim=1)[0] for h in hidden])
        return features, label_arrays(records)

    (fit, fit_labels), (scored, eval_labels) = pooled("train"), pooled("valid")
    logged = _logged(probed_run)[0]
    for task in ("pitch", "family"):
        for feature in layer_names(3):
            expected = probe_accuracy(fit[feature], fit_labels[task], scored[feature], eval_labels[task])
            assert logged[f"probe/{task}/{feature}"] == pytest.approx(expected, abs=1e-6), (task, feature)


def test_the_transcription_probe_scores_frame_ap_on_held_out_windows(demo_root, tmp_path):
    """probe.transcription adds a frame-level probe of pre-training's own music (the in-domain question)."""
    run = tmp_path / "run"
    cli_main(["fit", "--config", "pretrain/demo", f"--data.init_args.root={demo_root / 'musicnet'}",
              f"--probe.notes={demo_root / 'nsynth'}", f"--probe.transcription={demo_root / 'musicnet'}",
              "--probe.transcription_windows=6", "--probe.every_n_steps=10", "--probe.per_class=1",
              "--trainer.max_steps=10", f"--trainer.default_root_dir={run}", "--trainer.enable_progress_bar=false"])
    logged = _logged(run)
    assert sorted(logged) == [0, 10]
    for values in logged.values():
        features = [values[f"probe/transcription_ap/{f}"] for f in layer_names(3)]
        assert values["probe/transcription_ap/best"] == max(features)
        assert all(0.0 < v <= 1.0 for v in features)
        # log-mel frames hold the keys far better than the key prior does: the probe can tell them apart
        assert values["probe/transcription_ap/baseline_logmel"] > 2 * values["probe/transcription_ap/baseline_majority"]
