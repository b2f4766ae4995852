"""Every YAML in conf/ runs through LightningCLI with fast_dev_run (lightning-hydra-template style).

Real GPU configs are run on the CPU with the tiny preset and the demo data; everything else
(logger, callbacks, data module, model class, policy composition) is exactly the file's.
The fragments (trainer profiles, callback lists) run as part of the experiments composing them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lightning_w2v.runner import run_cli as cli_main
from lightning_w2v.runner.configs import expand_config

CONF = Path(__file__).resolve().parent.parent / "conf"
ALL_CONFIGS = sorted(str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml"))
PRETRAIN = sorted(c for c in ALL_CONFIGS if c.startswith("pretrain/"))
FINETUNE_TASKS = sorted(c for c in ALL_CONFIGS if c.startswith("finetune/") and "/policy/" not in c)
POLICIES = sorted(c for c in ALL_CONFIGS if c.startswith("finetune/policy/"))
FRAGMENTS = sorted(c for c in ALL_CONFIGS if c.startswith(("trainer/", "callbacks/")))
GPU_TO_CPU = ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.fast_dev_run=1"]
# The demo data set each fine-tuning config reads (NSynth unless named here)
DATA_OF = {"finetune/musicnet_transcription.yaml": "musicnet", "finetune/demo_transcription.yaml": "musicnet",
           "finetune/maestro_transcription.yaml": "maestro", "finetune/gtzan_genre.yaml": "gtzan",
           "finetune/mtt_tagging.yaml": "mtt", "finetune/giantsteps_key.yaml": "giantsteps",
           "finetune/emomusic.yaml": "emomusic", "finetune/manifest.yaml": "manifest/tags.csv"}


def test_every_config_is_covered():
    assert set(ALL_CONFIGS) == set(PRETRAIN) | set(FINETUNE_TASKS) | set(POLICIES) | set(FRAGMENTS)
    composed = {str(f.relative_to(CONF.resolve())) for c in PRETRAIN + FINETUNE_TASKS for f in expand_config(c, CONF)}
    assert set(FRAGMENTS) <= composed  # every fragment is run by some experiment below
    assert {"pretrain/musicnet_base.yaml", "pretrain/demo.yaml"} <= set(PRETRAIN)
    assert {"finetune/policy/fe.yaml", "finetune/policy/ft1.yaml", "finetune/policy/ft2.yaml"} == set(POLICIES)


@pytest.mark.parametrize("config", PRETRAIN)
def test_pretrain_config_fast_dev_run(config, demo_root, tmp_path):
    args = ["fit", "--config", str(CONF / config), *GPU_TO_CPU,
            f"--data.init_args.root={demo_root / 'musicnet'}", f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            "--data.init_args.max_batch_seconds=6", "--data.init_args.num_workers=0",
            "--model.init_args.preset=tiny", f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--probe.notes=null"]  # the probes have their own tests (test_probe.py)
    if "init_from:" in (CONF / config).read_text():  # no bundle download here: see test_continued_pretraining
        args.append("--model.init_args.init_from=null")
    cli = cli_main(args)
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1
    assert cli.model.hparams.preset == "tiny"


# The policies compose over every NSynth and transcription task; a clip-level task runs under FE (the policy
# fragments are the same files: test_clip_tasks.py runs FT2 on one in bf16-mixed)
CLIP_CONFIGS = {"finetune/gtzan_genre.yaml", "finetune/mtt_tagging.yaml", "finetune/giantsteps_key.yaml",
                "finetune/emomusic.yaml", "finetune/manifest.yaml"}
CONFIG_POLICY = [(c, p) for c in FINETUNE_TASKS for p in POLICIES if c not in CLIP_CONFIGS or p.endswith("fe.yaml")]


@pytest.mark.parametrize("config, policy", CONFIG_POLICY)
def test_finetune_config_fast_dev_run(config, policy, demo_root, tiny_pretrain_ckpt, tmp_path):
    where = "manifest" if config == "finetune/manifest.yaml" else "root"  # a manifest names its clips' folder
    args = ["fit", "--config", str(CONF / config), "--config", str(CONF / policy), *GPU_TO_CPU,
            f"--data.init_args.{where}={demo_root / DATA_OF.get(config, 'nsynth')}", "--data.init_args.num_workers=0",
            "--data.init_args.batch_size=4", f"--model.init_args.encoder.path={tiny_pretrain_ckpt}",
            f"--trainer.default_root_dir={tmp_path / 'run'}"]
    cli = cli_main(args)
    assert cli.trainer.state.finished
    expected_policy = Path(policy).stem.upper()
    assert cli.model.hparams.policy == expected_policy  # the fragment composed over the task file
    assert (tmp_path / "run" / "test_metrics.json").exists()  # test_after_fit ran the test split


def test_print_config_shows_the_papers_defaults(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", str(CONF / "pretrain" / "musicnet_base.yaml"), "--data.init_args.root=X",
                  "--print_config"])
    printed = capsys.readouterr().out
    for fragment in ("preset: base", "lr: 0.0005", "warmup_steps: 32000", "max_steps: 400000",
                     "precision: bf16-mixed", "max_sample_size: 250000", "max_batch_seconds: 87.5"):
        assert fragment in printed, fragment


def test_bad_config_value_names_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"model.init_args.policy='FT3': choose one of FE, FT1, FT2"):
        cli_main(["fit", "--config", str(CONF / "finetune" / "demo_pitch.yaml"),
                  "--model.init_args.policy=FT3", f"--trainer.default_root_dir={tmp_path}"])
