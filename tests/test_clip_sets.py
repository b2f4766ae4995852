"""MagnaTagATune, GiantSteps key and Emomusic in their distributed layouts: what is read, and every bad file named."""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from lightning_w2v.commands import main
from lightning_w2v.data import EmomusicDataModule, GiantStepsKeyDataModule, MTTDataModule
from lightning_w2v.data.cache import CacheBuildError
from lightning_w2v.data.sets.giantsteps import KEYS, normalise_key
from lightning_w2v.data.sets.mtt import TOP50, marble_split
from lightning_w2v.errors import ConfigError, DataError, DataNotFoundError


@pytest.fixture(scope="module")
def sets(demo_root):
    return demo_root  # the stand-ins, as `lightning-w2v data synth` writes them; tests that break files copy them


def _copy(sets, name, tmp_path):
    shutil.copytree(sets / name, tmp_path / name)
    return tmp_path / name


def test_mtt_reads_the_quoted_tab_separated_annotations(sets):
    module = MTTDataModule(root=str(sets / "mtt"), progress=False)
    clips = module.all_clips()
    assert len(clips) == 48 and len(clips[0].target) == 50
    with open(sets / "mtt" / "annotations_final.csv", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows[0][0] == "clip_id" and rows[0][-1] == "mp3_path"
    first = dict(zip(rows[0], rows[1]))
    mine = next(c for c in clips if c.path.as_posix().endswith(first["mp3_path"]))
    assert mine.target == tuple(float(first[tag]) for tag in TOP50)  # the outputs in the shipped tag order
    assert TOP50[:3] == ("guitar", "classical", "slow") and len(set(TOP50)) == 50


def test_mtt_splits_published_and_marble():
    from lightning_w2v.data.sets.common import published_split

    rows = published_split("mtt_split.tsv.gz")
    counts = {s: sum(1 for _, split in rows if split == s) for s in ("train", "valid", "test")}
    assert counts == {"train": 15_244, "valid": 1_529, "test": 4_332}
    assert all(marble_split(path) == split for path, split in rows)  # the lists keep MARBLE's folder rule
    assert [marble_split(f"{f}/x.mp3") for f in "0bcdf"] == ["train", "train", "valid", "test", "test"]
    with pytest.raises(ConfigError, match="data.init_args.split='random': choose one of sota, marble"):
        MTTDataModule(root="x", split="random")


def test_giantsteps_reads_both_repositories_as_marble_does(sets):
    module = GiantStepsKeyDataModule(root=str(sets / "giantsteps"), progress=False)
    clips = module.all_clips()
    by_split = {s: [c for c in clips if c.split == s] for s in ("train", "valid", "test")}
    assert len(by_split["test"]) == 4
    assert len(by_split["train"]) + len(by_split["valid"]) == 14  # the unsure (C=1) and two-key tracks left out
    train_dir = sets / "giantsteps" / "giantsteps-mtg-key-dataset" / "annotations"
    with open(train_dir / "beatport_metadata.txt", newline="") as handle:
        artist = {r["ID"]: r["ARTIST"] for r in csv.DictReader(handle, delimiter="\t")}
    artists = {s: {artist[c.path.name.split(".")[0]] for c in by_split[s]} for s in ("train", "valid")}
    assert artists["train"] and artists["valid"] and not artists["train"] & artists["valid"]
    assert normalise_key("d# minor", "x") == "Eb minor" and normalise_key("C# major", "x") == "Db major"
    assert len(KEYS) == 24 and KEYS[0] == "C major" and KEYS[12] == "C minor"


def test_emomusic_splits_by_the_mediaeval_set_and_artist(sets, tmp_path):
    module = EmomusicDataModule(root=str(sets / "emomusic"), cache_dir=str(tmp_path / "cache"), progress=False)
    clips = module.all_clips()
    assert {c.split for c in clips} == {"train", "valid", "test"}
    assert sum(c.split == "test" for c in clips) == 10  # the "evaluation" songs
    assert all(len(c.target) == 2 and all(1 <= v <= 9 for v in c.target) for c in clips)
    mean, std = module.target_statistics()
    train = np.array([c.target for c in clips if c.split == "train"])
    np.testing.assert_allclose(mean, train.mean(axis=0))
    module.prepare_data()
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert batch["targets"].shape[1] == 2  # z-scored numbers, under the regression spec's key
    everything = np.concatenate([module.datasets["train"].targets])
    assert abs(everything.mean()) < 0.5


@pytest.mark.parametrize("case", ["mtt_tag_column", "mtt_bad_value", "mtt_missing_mp3", "mtt_undecodable",
                                  "gs_bad_key_file", "gs_bad_annotation", "gs_missing", "emo_rating",
                                  "emo_no_info_row", "emo_no_root"])
def test_bad_clip_set_input_is_one_line_naming_the_file(case, sets, tmp_path):
    if case.startswith("mtt"):
        root, make = _copy(sets, "mtt", tmp_path), MTTDataModule
        annotations = root / "annotations_final.csv"
        if case == "mtt_tag_column":
            annotations.write_bytes(annotations.read_bytes().replace(b'"guitar"', b'"guitars"', 1))
            error, message = DataError, r"annotations_final.csv: column\(s\) 'guitar' missing from the header"
        elif case == "mtt_bad_value":
            lines = annotations.read_bytes().decode().split("\r\n")  # CRLF, as distributed
            lines[3] = lines[3].replace('"0"', '"yes"', 1)
            annotations.write_bytes("\r\n".join(lines).encode())
            error, message = DataError, r"annotations_final.csv, line 4: tag values must be 0 or 1"
        elif case == "mtt_missing_mp3":
            next((root / "mp3").rglob("*.mp3")).unlink()
            error, message = DataNotFoundError, r"1 MP3\(s\) of the split are missing"
        else:
            victim = sorted((root / "mp3").rglob("*.mp3"))[5]
            victim.write_bytes(b"\x00garbage, not an mp3" * 10)
            error, message = CacheBuildError, victim.name
    elif case.startswith("gs"):
        root, make = _copy(sets, "giantsteps", tmp_path), GiantStepsKeyDataModule
        if case == "gs_bad_key_file":
            key_file = sorted((root / "giantsteps-key-dataset" / "annotations" / "key").glob("*.key"))[1]
            key_file.write_text("H major")
            error, message = DataError, rf"{key_file.name}: 'H major' is not one of the 24 keys"
        elif case == "gs_bad_annotation":
            table = root / "giantsteps-mtg-key-dataset" / "annotations" / "annotations.txt"
            lines = table.read_text().splitlines()
            lines[2] = lines[2].split("\t")[0] + "\tmajorish\t2"
            table.write_text("\n".join(lines) + "\n")
            error, message = DataError, r"annotations.txt, line 3: 'majorish' is not a key"
        else:
            shutil.rmtree(root / "giantsteps-mtg-key-dataset")
            error, message = DataNotFoundError, r"GiantSteps key not found under .*audio_dl.sh"
    else:
        root, make = _copy(sets, "emomusic", tmp_path), EmomusicDataModule
        static = root / "annotations" / "static_annotations.csv"
        if case == "emo_rating":
            lines = static.read_text().splitlines()
            parts = lines[2].split(",")
            parts[1] = "12.5"
            lines[2] = ",".join(parts)
            static.write_text("\n".join(lines) + "\n")
            error, message = DataError, r"static_annotations.csv, line 3: ratings are on 1-9"
        elif case == "emo_no_info_row":
            info = root / "annotations" / "songs_info.csv"
            lines = info.read_text().splitlines()
            info.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
            error, message = DataError, r"static_annotations.csv, line 2: song 2 has no row in songs_info.csv"
        else:
            shutil.rmtree(root / "annotations")
            error, message = DataNotFoundError, r"Emomusic not found under .*cvml.unige.ch"
    with pytest.raises(error, match=message) as caught:
        module = make(root=str(root), cache_dir=str(tmp_path / "cache"), progress=False)
        module.prepare_data()
        module.setup()
    assert "\n" not in str(caught.value).strip()


def test_data_synth_verify_prepare_and_the_sets_without_a_download(tmp_path, capsys):
    root = tmp_path / "gs"
    assert main(["data", "synth", "giantsteps", "--root", str(root)]) == 0
    assert main(["data", "verify", "giantsteps", "--root", str(root), "--expect", "test=4", "--check-audio",
                 "all"]) == 0
    assert main(["data", "prepare", "giantsteps", "--root", str(root)]) == 0
    assert "the 16 kHz cache of 18 clips is ready" in capsys.readouterr().out
    assert main(["data", "download", "giantsteps", "--root", str(root)]) != 0
    assert "error: giantsteps has no download here: clone github.com/GiantSteps" in capsys.readouterr().err
    assert main(["data", "verify", "manifest", "--root", str(root)]) != 0
    assert "a manifest is your own folder" in capsys.readouterr().err
