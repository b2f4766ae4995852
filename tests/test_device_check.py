"""The GPU device check, in its CPU smoke mode: every stage runs and reports, so it cannot rot."""
from __future__ import annotations

import json

from lightning_w2v.commands import main


def test_device_check_cpu_smoke_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "check"
    assert main(["device-check", "--cpu-smoke", "--out", str(out)]) == 0, capsys.readouterr().err[-3000:]
    results = json.loads((out / "device_check.json").read_text())
    assert results["mode"] == "cpu-smoke"
    for stage in ("bench_eager", "fit_step_bf16", "pretraining"):
        assert results[stage]["ok"], results[stage]
    bench = results["bench_eager"]["result"]
    assert bench["audio_seconds_per_s"] > 0 and bench["transformers"]["ratio"] > 0
    fits = results["fit_step_bf16"]["result"]
    for kind in ("pretrain", "finetune"):
        assert fits[kind]["global_step"] == 1 and fits[kind]["finite"] and "bf16" in fits[kind]["precision"]
    pretraining = results["pretraining"]["result"]
    assert pretraining["steps"] > 0 and 0 < pretraining["probe_share"] < 1
    assert set(pretraining["probe_curves"]) == {"pitch", "family"}
    assert "0" in pretraining["probe_curves"]["pitch"]  # probed at step 0 (JSON keys are strings)
    assert set(pretraining["probe_baselines"]) == {"untrained", "logmel", "majority"}
