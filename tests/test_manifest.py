"""The manifest task: any labelled folder, its kind from the columns, learnt, and every bad row named."""
from __future__ import annotations

import json
import shutil

import pytest

from lightning_w2v import FinetuneModule
from lightning_w2v.data import ManifestDataModule
from lightning_w2v.data.sets.manifest import SYNTH_CLASSES, SYNTH_TAGS, read_manifest, write_synthetic_manifests
from lightning_w2v.errors import DataError, DataNotFoundError
from lightning_w2v.runner import run_cli


@pytest.fixture(scope="session")
def manifests(tmp_path_factory):
    return write_synthetic_manifests(tmp_path_factory.mktemp("manifests"))  # not demo_root: tests edit copies


def test_the_kind_and_names_follow_from_the_columns(manifests):
    assert read_manifest(manifests / "single.csv")[1] == {"kind": "single", "names": sorted(SYNTH_CLASSES)}
    assert read_manifest(manifests / "tags.csv")[1] == {"kind": "multi", "names": sorted(SYNTH_TAGS)}
    clips, definition = read_manifest(manifests / "targets.jsonl")
    assert definition == {"kind": "regression", "names": ["decay", "register"]}
    assert len(clips) == 96 and all(len(c.target) == 2 for c in clips)
    tagged = read_manifest(manifests / "tags.csv")[0]
    assert tagged[0].start == 0.5 and tagged[0].end is None  # optional span columns


@pytest.mark.parametrize("manifest, metric, floor", [
    ("single.csv", "test/acc", 0.8),  # 3 classes: chance 1/3
    ("tags.csv", "test/auroc_macro", 0.75),  # chance 0.5
    ("targets.jsonl", "test/r2", 0.2),  # predicting the mean: 0
])
def test_each_kind_learns_on_the_stand_in(manifest, metric, floor, manifests, tmp_path):
    """Log-mel frames and a linear head (frozen features, so 40 epochs are seconds); margins hold over seeds 0-2."""
    out = tmp_path / "run"
    run_cli(["fit", "--config", "finetune/manifest", "--config", "finetune/policy/fe",
             "--model.init_args.encoder.source=logmel", "--model.init_args.standardize_features=true",
             "--model.init_args.head_lr=0.01", f"--data.init_args.manifest={manifests / manifest}",
             f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--data.init_args.num_workers=0",
             "--data.init_args.batch_size=8", "--trainer.accelerator=cpu", "--trainer.precision=32-true",
             "--trainer.max_epochs=40", "--trainer.enable_progress_bar=false", "--trainer.logger=false",
             f"--trainer.default_root_dir={out}"])
    written = json.loads((out / "test_metrics.json").read_text())
    assert written["task"] == "manifest"
    assert written["metrics"][metric] >= floor, written["metrics"]
    best = next((out / "checkpoints").glob("best-*.ckpt"))
    reloaded = FinetuneModule.load_from_checkpoint(best)  # the definition travels in the checkpoint
    assert reloaded.task_spec.class_names == tuple(read_manifest(manifests / manifest)[1]["names"])


def _copy(manifests, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(manifests, root)
    return root


def _edit(path, old, new, count=1):
    path.write_text(path.read_text().replace(old, new, count))


@pytest.mark.parametrize("case, error, message", [
    ("missing_file", DataNotFoundError, r"single.csv, row 3: .*clip001.wav does not exist"),
    ("unknown_test_label", DataError, r"single.csv, row 5: label 'highest' of the test split is not among the "
                                      r"training labels \(high, low, middle\)"),
    ("unknown_test_tag", DataError, r"tags.csv, row 5: tag 'loud' of the test split is not among the training tags"),
    ("no_label_column", DataError, r"single.csv: a manifest has exactly one kind of label column.*found none"),
    ("two_label_kinds", DataError, r"found single and regression"),
    ("no_path_column", DataError, r"single.csv: the column\(s\) path are missing"),
    ("bad_split", DataError, r"single.csv, row 2: split='training'; use train, valid or test"),
    ("bad_target", DataError, r"targets.jsonl, row 1: target_decay='fast' is not a finite number"),
    ("bad_json", DataError, r"targets.jsonl, line 1: not a JSON object"),
    ("empty_split", DataError, r"manifest under .*: the valid split holds no clips"),
    ("bad_span", DataError, r"tags.csv, row 2: end=0.2 is not after start=0.5"),
    ("too_short", DataError, r"clip000.wav: the clip \(1.00 s from 0.50 s\) is shorter than one slice of 5 s"),
    ("no_manifest", DataNotFoundError, r"nowhere.csv: the manifest does not exist"),
])
def test_a_bad_manifest_is_one_line_naming_file_and_row(case, error, message, manifests, tmp_path):
    root = _copy(manifests, tmp_path)
    name = "single.csv"
    if case == "missing_file":
        (root / "audio" / "clip001.wav").unlink()
    elif case == "unknown_test_label":  # row 5 is clip003, a test clip
        lines = (root / name).read_text().splitlines()
        lines[4] = lines[4].rsplit(",", 1)[0] + ",highest"
        (root / name).write_text("\n".join(lines) + "\n")
    elif case == "unknown_test_tag":
        name = "tags.csv"
        lines = (root / name).read_text().splitlines()
        lines[4] = lines[4].replace(",0.5,", "").split(",")
        lines[4] = f"{lines[4][0]},{lines[4][1]},loud,0.5,"
        (root / name).write_text("\n".join(lines) + "\n")
    elif case == "no_label_column":
        _edit(root / name, "path,split,label", "path,split,genre")
    elif case == "two_label_kinds":
        _edit(root / name, "path,split,label", "path,split,label,target_x")
    elif case == "no_path_column":
        _edit(root / name, "path,split,label", "file,split,label")
    elif case == "bad_split":
        _edit(root / name, ",train,", ",training,")
    elif case == "bad_target":
        name = "targets.jsonl"
        text = (root / name).read_text().splitlines()
        row = json.loads(text[0])
        row["target_decay"] = "fast"
        (root / name).write_text("\n".join([json.dumps(row), *text[1:]]) + "\n")
    elif case == "bad_json":
        name = "targets.jsonl"
        _edit(root / name, "}\n", "\n")
    elif case == "empty_split":
        _edit(root / name, ",valid,", ",train,", count=-1)
    elif case == "bad_span":
        name = "tags.csv"
        _edit(root / name, ",0.5,\n", ",0.5,0.2\n")
    elif case == "too_short":
        name = "tags.csv"
        _edit(root / name, ",0.5,\n", ",0.5,1.5\n")
    else:
        name = "nowhere.csv"
    with pytest.raises(error, match=message) as caught:
        module = ManifestDataModule(manifest=str(root / name), cache_dir=str(tmp_path / "cache"), progress=False)
        module.prepare_data()
        module.setup()
    assert "\n" not in str(caught.value)


def test_the_cli_refuses_a_manifest_task_without_a_definition(tmp_path):
    from lightning_w2v.errors import ConfigError

    with pytest.raises(ConfigError, match="the manifest task needs"):
        FinetuneModule(encoder={"source": "logmel"}, task="manifest")
