"""``lightning-w2v data download|verify|prepare|synth``: the data sets, as distributed, and synthetic stand-ins."""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from .options import split_count

DATASETS = ("musicnet", "nsynth", "maestro", "gtzan", "mtt", "giantsteps", "emomusic")
WHERE_TO_GET = {  # the sets without a stable download URL: where their files come from
    "gtzan": "GTZAN's original URL is gone: fetch genres.tar.gz from a GTZAN mirror and extract it under --root",
    "giantsteps": "clone github.com/GiantSteps/giantsteps-key-dataset and giantsteps-mtg-key-dataset under --root "
                  "and run each repository's audio_dl.sh (it fetches and md5-checks the MP3s)",
    "emomusic": "download clips_45sec.tar.gz and annotations.tar.gz from cvml.unige.ch/databases/emoMusic/ (a "
                "form asks for a name first) and extract both under --root",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data",
                                 help="download, verify, prepare or synthesise a data set (or a clips manifest)")
    data.add_argument("action", choices=["download", "verify", "prepare", "synth"],
                      help="download (resumable, checksummed), verify (counts, audio headers, label files), "
                           "prepare (the 16 kHz cache of MusicNet or a clip set), or synth (write a small SYNTHETIC "
                           "stand-in in the data set's own layout, to try every command without the data)")
    data.add_argument("dataset", choices=[*DATASETS, "manifest"],
                      help="the data set (manifest: synth only, labelled clips with a manifest of each kind)")
    data.add_argument("--root", required=True,
                      help="the data root: holds nsynth-<split>/, musicnet/, maestro-v3.0.0/, genres/ (GTZAN), "
                           "annotations_final.csv and mp3/ (MTT), giantsteps-*key-dataset/, or clips_45seconds/ "
                           "(Emomusic)")
    data.add_argument("--base-url", default=None,
                      help="download from this mirror (also LIGHTNING_W2V_NSYNTH_URL, LIGHTNING_W2V_MUSICNET_URL, "
                           "LIGHTNING_W2V_MAESTRO_URL, LIGHTNING_W2V_MTT_URL)")
    data.add_argument("--splits", nargs="*", default=None, help="NSynth splits to download (default: all three)")
    data.add_argument("--no-keep-archives", action="store_true",
                      help="delete each archive this command downloaded once it is extracted")
    data.add_argument("--check-audio", choices=["sample", "all", "none"], default="sample",
                      help="verify: read the headers of a sample of files per split (default), all of them, or none")
    data.add_argument("--sample-size", type=int, default=200, help="verify: files per split in sample mode")
    data.add_argument("--expect", nargs="+", type=split_count, default=None, metavar="SPLIT=N",
                      help="verify: expected counts, e.g. test=4096 (default: the official counts)")
    data.add_argument("--cache-dir", default=None,
                      help="prepare: where the 16 kHz cache goes (default: ROOT/cache_16k)")
    data.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "synth":
        from ..data.demo_modules import SYNTHETIC_WRITERS

        root = SYNTHETIC_WRITERS[args.dataset](args.root)
        print(f"a SYNTHETIC {args.dataset} stand-in (not the real data) is under {root}")
        return 0
    if args.dataset == "manifest":
        raise ConfigError("a manifest is your own folder: nothing to download, verify or prepare (a fit checks every "
                          "row first); `data synth manifest` writes an example")
    if args.action == "download":
        if args.dataset in WHERE_TO_GET:
            raise ConfigError(f"{args.dataset} has no download here: {WHERE_TO_GET[args.dataset]}; then run "
                              f"`lightning-w2v data verify {args.dataset} --root ROOT`")
        from ..data.download import download_dataset

        download_dataset(args.dataset, args.root, base_url=args.base_url, splits=args.splits,
                         keep_archives=not args.no_keep_archives)
        print(f"{args.dataset} is ready under {args.root}")
        return 0
    if args.action == "verify":
        from ..data.verify import verify_main

        expected = dict(args.expect) if args.expect else None
        return verify_main(args.dataset, args.root, expected_counts=expected, check_audio=args.check_audio,
                           sample_size=args.sample_size)
    from ..data.verify import CLIP_SETS

    if args.dataset in CLIP_SETS:  # their 16 kHz cache, so the first fit starts at once
        import importlib

        module_name, _, class_name = CLIP_SETS[args.dataset][0].rpartition(".")
        clip_class = getattr(importlib.import_module(module_name), class_name)
        clip_module = clip_class(root=args.root, cache_dir=args.cache_dir)
        clip_module.prepare_data()
        print(f"{args.dataset}: the 16 kHz cache of {len(clip_module.all_clips())} clips is ready in "
              f"{clip_module.cache_dir}")
        return 0
    if args.dataset != "musicnet":
        raise ConfigError(f"{args.dataset} needs no preparing (it is read as distributed)")
    from ..data.musicnet import MusicNetDataModule

    module = MusicNetDataModule(root=args.root, cache_dir=args.cache_dir)
    module.prepare_data()
    module.setup("fit")
    summary = module.summary()
    print("MusicNet 16 kHz cache ready: " + ", ".join(f"{k}={v:.6g}" for k, v in summary.items()))
    return 0
