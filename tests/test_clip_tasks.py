"""Clip-level tasks: GTZAN genre in its layout, slices scored per file, the tagging / emotion / key metrics."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lightning_w2v.commands import main
from lightning_w2v.data import GTZANDataModule
from lightning_w2v.data.sets.common import published_split
from lightning_w2v.data.sets.gtzan import GENRES, GTZAN_RATE
from lightning_w2v.data.verify import verify_dataset
from lightning_w2v.downstream import task_spec
from lightning_w2v.downstream.metrics import KeyWeightedScore
from lightning_w2v.downstream.spec import MULTI, REGRESSION, MultiLabelSpec, RegressionSpec
from lightning_w2v.errors import ConfigError, DataError, DataNotFoundError
from lightning_w2v.runner import run_cli
from lightning_w2v.tasks.file_scores import FileAverager
from lightning_w2v.vocabulary import SAMPLE_RATE

STAND_IN = {"train": 30, "valid": 10, "test": 20}  # write_synthetic_gtzan: 6 clips a genre, 3 / 1 / 2


def test_the_published_gtzan_split_is_the_fault_filtered_one():
    rows = published_split("gtzan_filtered_split.tsv")
    counts = {split: sum(1 for _, s in rows if s == split) for split in ("train", "valid", "test")}
    assert counts == {"train": 443, "valid": 197, "test": 290}
    paths = [path for path, _ in rows]
    assert len(set(paths)) == len(paths)  # no clip in two splits
    assert {path.split("/")[0] for path in paths} == set(GENRES)


def test_file_averager_equals_a_per_file_mean():
    rng = np.random.default_rng(0)
    files = rng.integers(0, 7, size=40)
    outputs = rng.standard_normal((40, 3)).astype(np.float32)
    targets = files % 3  # a file's slices share its target
    averager = FileAverager()
    for chunk in np.array_split(np.arange(40), 6):  # batches, in any order
        averager.add(torch.from_numpy(files[chunk]), torch.from_numpy(outputs[chunk]),
                     torch.from_numpy(targets[chunk]))
    mean, target = averager.averaged()
    ids = sorted(set(files.tolist()))
    assert mean.shape == (len(ids), 3)
    for row, file in enumerate(ids):
        np.testing.assert_allclose(mean[row].numpy(), outputs[files == file].mean(axis=0), rtol=1e-6)
        assert target[row] == file % 3
    averager.reset()
    assert averager.averaged() is None


def test_gtzan_stand_in_loads_in_slices_with_file_ids(demo_root, tmp_path):
    module = GTZANDataModule(root=str(demo_root / "gtzan"), slice_seconds=4, cache_dir=str(tmp_path / "cache"),
                             batch_size=8, progress=False)
    module.prepare_data()
    module.setup()
    for split, clips in STAND_IN.items():
        data = module.datasets[split]
        assert len(data) == 3 * clips  # 12 s clips: three 4 s slices each, the tail dropped
        assert len(set(data.slices[:, 3].tolist())) == clips
    batch = next(iter(module.val_dataloader()))
    assert batch["waveforms"].shape == (8, 4 * SAMPLE_RATE)
    clips = module.all_clips()
    for file, label in zip(batch["file"].tolist(), batch["labels"].tolist()):
        assert label == GENRES.index(clips[file].path.parent.name)  # the genre folder is the label
        assert clips[file].path.suffix == ".au"  # listed as .wav, found as .au
    assert float(batch["waveforms"].abs().max()) > 0.1


def test_data_synth_and_verify_gtzan(tmp_path, capsys):
    root = tmp_path / "gtzan"
    assert main(["data", "synth", "gtzan", "--root", str(root)]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    expect = [f"{split}={count}" for split, count in STAND_IN.items()]
    assert main(["data", "verify", "gtzan", "--root", str(root), "--expect", *expect, "--check-audio", "all"]) == 0
    report = verify_dataset("gtzan", root, check_audio="none")  # the published counts: the stand-in is not GTZAN
    assert not report.ok and report.counts["train"] == (30, 443)
    victim = root / "genres" / "jazz" / "jazz.00004.au"
    victim.write_bytes(victim.read_bytes()[:20])  # truncated inside the header
    report = verify_dataset("gtzan", root, expected_counts=STAND_IN, check_audio="all")
    assert [c.path for c in report.corrupt] == ["genres/jazz/jazz.00004.au"]
    import soundfile as sf

    sf.write(victim, np.zeros(GTZAN_RATE, np.float32), 44_100, format="AU", subtype="PCM_16")
    report = verify_dataset("gtzan", root, expected_counts=STAND_IN, check_audio="all")
    assert "sample rate 44100 Hz, expected 22050 Hz" in report.corrupt[0].reason


def _stand_in(tmp_path, demo_root):
    import shutil

    root = tmp_path / "gtzan"
    shutil.copytree(demo_root / "gtzan", root)
    return root


@pytest.mark.parametrize("case", ["missing", "bad_line", "bad_genre", "too_short", "no_root", "bad_task"])
def test_bad_gtzan_input_is_one_line_naming_the_file(case, demo_root, tmp_path):
    root = _stand_in(tmp_path, demo_root)
    split = root / "genres" / "split.tsv"
    kwargs = {}
    if case == "missing":
        (root / "genres" / "rock" / "rock.00002.au").unlink()
        error, message = DataNotFoundError, r"1 clip\(s\) of .*split.tsv are missing, e.g. rock/rock.00002.wav"
    elif case == "bad_line":
        split.write_text(split.read_text().replace("\ttrain\n", "\ttrian\n", 1))
        error, message = DataError, r"split.tsv, line 2: expected <path><TAB>train\|valid\|test"
    elif case == "bad_genre":
        split.write_text(split.read_text() + "polka/polka.00000.wav\ttest\n")
        error, message = DataError, r"polka/polka.00000.wav is not in one of the genre folders"
    elif case == "too_short":
        kwargs["slice_seconds"] = 30
        error, message = DataError, r"blues.00000.au: the clip \(12.00 s from 0.00 s\) is shorter than one slice"
    elif case == "no_root":
        root = tmp_path / "nowhere"
        error, message = DataNotFoundError, r"GTZAN not found under .*nowhere.*data synth gtzan"
    else:
        kwargs["task"] = "pitch"
        error, message = ConfigError, r"data.init_args.task='pitch': GTZANDataModule serves gtzan_genre"
    with pytest.raises(error, match=message) as caught:
        module = GTZANDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), progress=False, **kwargs)
        module.prepare_data()
        module.setup()
    assert "\n" not in str(caught.value)


def test_gtzan_fit_scores_whole_files_and_learns(demo_root, tmp_path):
    """Log-mel frames and a linear head on the stand-in: test accuracy is over the 20 test files (their slices'
    outputs averaged), well above chance (10 %): 90-95 % over seeds 0-2, so 60 % leaves a wide margin."""
    out = tmp_path / "run"
    cli = run_cli(["fit", "--config", "finetune/gtzan_genre", "--config", "finetune/policy/fe",
                   "--model.init_args.encoder.source=logmel", "--model.init_args.standardize_features=true",
                   f"--data.init_args.root={demo_root / 'gtzan'}", f"--data.init_args.cache_dir={tmp_path / 'c'}",
                   "--data.init_args.num_workers=0", "--data.init_args.batch_size=8",
                   "--data.init_args.slice_seconds=4", "--trainer.accelerator=cpu", "--trainer.precision=32-true",
                   "--trainer.max_epochs=30", "--model.init_args.head_lr=0.01",
                   "--trainer.enable_progress_bar=false", "--trainer.logger=false",
                   f"--trainer.default_root_dir={out}"])
    assert cli.trainer.state.finished
    metrics = json.loads((out / "test_metrics.json").read_text())["metrics"]
    correct = metrics["test/acc"] * STAND_IN["test"]
    assert math.isclose(correct, round(correct), abs_tol=1e-4)  # a fraction of the 20 files, not of 60 slices
    assert metrics["test/acc"] >= 0.6, metrics


def test_a_bf16_mixed_fit_step_with_the_mlp_head(demo_root, tmp_path, tiny_pretrain_ckpt):
    cli = run_cli(["fit", "--config", "finetune/gtzan_genre", "--config", "finetune/policy/ft2",
                   f"--model.init_args.encoder.path={tiny_pretrain_ckpt}", "--model.init_args.head=mlp",
                   f"--data.init_args.root={demo_root / 'gtzan'}", f"--data.init_args.cache_dir={tmp_path / 'c'}",
                   "--data.init_args.num_workers=0", "--data.init_args.batch_size=4",
                   "--trainer.accelerator=cpu", "--trainer.precision=bf16-mixed", "--trainer.fast_dev_run=1",
                   f"--trainer.default_root_dir={tmp_path / 'run'}"])
    assert cli.trainer.state.finished
    assert isinstance(cli.model.head.linear, torch.nn.Sequential)
    assert cli.model.head.linear[0].out_features == 512


def test_a_bad_head_kind_names_the_key():
    from lightning_w2v.tasks.heads import make_head

    with pytest.raises(ConfigError, match=r"model.init_args.head='deep': choose one of linear, mlp"):
        make_head(False, (8,), 3, kind="deep")


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The probability that a positive outscores a negative (ties count half): the Mann-Whitney form."""
    pos, neg = scores[positive == 1], scores[positive == 0]
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))


def _average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at * hits).sum() / hits.sum())


def test_tagging_metrics_equal_independent_computations():
    rng = np.random.default_rng(1)
    targets = (rng.random((50, 4)) < 0.3).astype(np.int64)
    targets[0] = 1  # every tag has a positive
    logits = rng.standard_normal((50, 4)) + 1.5 * targets
    spec = MultiLabelSpec(name="tags", label_kind=MULTI, num_outputs=4, class_names=tuple("abcd"),
                          axis_label="tag")
    metrics = spec.metrics("test")
    metrics.update(*spec.metric_inputs(torch.tensor(logits), torch.tensor(targets), None))
    values = {k: float(v) for k, v in metrics.compute().items()}
    scores = 1 / (1 + np.exp(-logits))
    assert values["test/auroc_macro"] == pytest.approx(np.mean([_auroc(scores[:, k], targets[:, k])
                                                                for k in range(4)]), abs=1e-5)
    assert values["test/ap_macro"] == pytest.approx(np.mean([_average_precision(scores[:, k], targets[:, k])
                                                             for k in range(4)]), abs=1e-5)
    loss = spec.loss(torch.tensor(logits), torch.tensor(targets))
    expected = -np.mean(targets * np.log(scores) + (1 - targets) * np.log(1 - scores))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_emotion_metrics_equal_independent_r2():
    rng = np.random.default_rng(2)
    targets = rng.standard_normal((30, 2)).astype(np.float32)
    outputs = (0.7 * targets + 0.4 * rng.standard_normal((30, 2))).astype(np.float32)
    spec = RegressionSpec(name="emotion", label_kind=REGRESSION, num_outputs=2, class_names=("valence", "arousal"),
                          axis_label="dimension")
    metrics = spec.metrics("test")
    for chunk in np.array_split(np.arange(30), 3):
        metrics.update(*spec.metric_inputs(torch.tensor(outputs[chunk]), torch.tensor(targets[chunk]), None))
    values = {k: float(v) for k, v in metrics.compute().items()}
    r2 = [1 - ((targets[:, k] - outputs[:, k]) ** 2).sum() / ((targets[:, k] - targets[:, k].mean()) ** 2).sum()
          for k in range(2)]
    assert values["test/r2_valence"] == pytest.approx(r2[0], abs=1e-5)
    assert values["test/r2_arousal"] == pytest.approx(r2[1], abs=1e-5)
    assert values["test/r2"] == pytest.approx(np.mean(r2), abs=1e-5)


def test_key_weighted_score_follows_mirex_weights():
    keys = ("C major", "G major", "A minor", "C minor", "F# major")
    metric = KeyWeightedScore(keys)
    references = torch.tensor([0, 0, 0, 0, 0])
    predicted = torch.tensor([0, 1, 2, 3, 4])  # right, a fifth up, relative minor, parallel minor, unrelated
    metric.update(torch.nn.functional.one_hot(predicted, 5).float(), references)
    assert float(metric.compute()) == pytest.approx((1 + 0.5 + 0.3 + 0.2 + 0) / 5)


def test_the_clip_task_is_registered():
    spec = task_spec("gtzan_genre")
    assert spec.num_outputs == 10 and spec.class_names == GENRES and spec.monitor == "acc"
