"""W&B: a real demo fit logs offline (no prompt, no network) and the run files hold metrics and config."""
from __future__ import annotations

from pathlib import Path

from wandb_records import finished_run_records

from lightning_w2v.callbacks import resolve_wandb_mode
from lightning_w2v.runner import run_cli as cli_main

CONF = Path(__file__).resolve().parent.parent / "conf"


def test_mode_follows_environment_and_credentials(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode() == ("disabled", "WANDB_MODE=disabled")
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    monkeypatch.setenv("HOME", "/nonexistent")
    mode, reason = resolve_wandb_mode()
    assert mode == "offline" and "credentials" in reason


def test_demo_fit_logs_metrics_and_config_offline(demo_root, tmp_path, monkeypatch, capsys):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    args = ["fit", "--config", str(CONF / "pretrain" / "demo.yaml"),
            f"--data.init_args.root={demo_root / 'musicnet'}", f"--data.init_args.cache_dir={tmp_path / 'cache'}",
            "--trainer.max_steps=3", "--trainer.log_every_n_steps=1", f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--trainer.logger=lightning_w2v.callbacks.WandbLogger",
            "--trainer.logger.init_args.project=lightning-w2v-test",
            f"--trainer.logger.init_args.save_dir={tmp_path}", "--probe.notes=null"]
    cli_main(args)
    wandb.finish()
    # An offline run keeps history and config only in its record stream (protobuf records
    # whose keys and JSON values are stored as plain UTF-8): look for them there.
    records = finished_run_records(tmp_path)
    for metric in (b"train/contrastive_loss", b"train/grad_norm", b"train/code_perplexity"):
        assert metric in records, metric
    assert b'"preset":"tiny"' in records  # the resolved CLI config
    assert b'"max_steps":3' in records
    assert "wandb sync" in capsys.readouterr().out  # says how to upload


def test_resume_continues_the_same_wandb_run(demo_root, tmp_path, monkeypatch):
    import torch
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "run"
    common = ["--config", str(CONF / "pretrain" / "demo.yaml"),
              f"--data.init_args.root={demo_root / 'musicnet'}", f"--data.init_args.cache_dir={tmp_path / 'cache'}",
              f"--trainer.default_root_dir={run_dir}", "--trainer.logger=lightning_w2v.callbacks.WandbLogger",
              "--trainer.logger.init_args.project=lightning-w2v-test",
              f"--trainer.logger.init_args.save_dir={tmp_path}", "--probe.notes=null"]
    cli_main(["fit", *common, "--trainer.max_steps=2"])
    wandb.finish()
    first = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["wandb_run_id"]
    cli_main(["fit", *common, "--trainer.max_steps=4", "--ckpt_path=last"])
    wandb.finish()
    second = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert second["global_step"] == 4
    assert second["wandb_run_id"] == first
    run_folders = sorted(tmp_path.glob("wandb/offline-run-*"))
    assert len(run_folders) == 2 and all(first in folder.name for folder in run_folders)  # "-1" if same second


def test_a_config_run_without_credentials_logs_offline(demo_root, tmp_path, monkeypatch):
    """The GPU configs' W&B logger, built from YAML (which passes every wandb.init argument, unset ones as
    None), logs offline on a machine without credentials instead of asking for a login."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cli = cli_main(["--config", str(CONF / "finetune" / "nsynth_pitch.yaml"), "--config",
                    str(CONF / "finetune" / "policy" / "fe.yaml"), "--model.init_args.encoder.source=random",
                    "--model.init_args.encoder.preset=tiny", f"--data.init_args.root={demo_root / 'nsynth'}",
                    "--trainer.accelerator=cpu", "--trainer.precision=32-true",
                    f"--trainer.default_root_dir={tmp_path / 'run'}"], run=False)
    assert cli.trainer.logger._wandb_init["mode"] == "offline"
