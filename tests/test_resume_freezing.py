"""Resuming a fine-tuning with --ckpt_path last keeps the policy's frozen set and optimiser groups.

Each policy is fine-tuned through the CLI for one epoch (ModelCheckpoint save_last), then
resumed for one more. :class:`FreezeRecorder` (added with ``--trainer.callbacks+=``)
snapshots what must survive the resume: requires_grad per parameter, the frozen weights,
and the optimiser's param groups (LR and which parameters, by name, each group holds).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from lightning_w2v.runner import run_cli as cli_main

CONF = Path(__file__).resolve().parent.parent / "conf"


class FreezeRecorder(pl.Callback):
    """Writes ``<prefix>_start.pt`` (after any checkpoint restore) and ``<prefix>_end.pt``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def _snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule, phase: str) -> None:
        names = {id(p): n for n, p in pl_module.named_parameters()}
        groups = [{"name": g.get("name"), "lr": g["lr"], "params": sorted(names[id(p)] for p in g["params"])}
                  for g in trainer.optimizers[0].param_groups]
        torch.save({
            "requires_grad": {n: p.requires_grad for n, p in pl_module.named_parameters()},
            "weights": {n: p.detach().clone() for n, p in pl_module.named_parameters()},
            "groups": groups,
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "encoder_training": any(m.training for m in pl_module.encoder.modules()),
        }, f"{self.prefix}_{phase}.pt")

    def on_train_start(self, trainer, pl_module):
        self._snapshot(trainer, pl_module, "start")

    def on_train_end(self, trainer, pl_module):
        self._snapshot(trainer, pl_module, "end")


def _fit(ckpt, data_root: Path, run_dir: Path, policy: str, epochs: int, prefix: Path, resume: bool) -> None:
    recorder = {"class_path": f"{__name__}.FreezeRecorder", "init_args": {"prefix": str(prefix)}}
    args = ["fit", "--config", str(CONF / "finetune" / "demo_instrument.yaml"),
            "--config", str(CONF / "finetune" / "policy" / f"{policy.lower()}.yaml"),
            f"--model.init_args.encoder.path={ckpt}", f"--data.init_args.root={data_root}",
            "--data.init_args.subset=2", "--data.init_args.batch_size=8",  # 22 training notes: 3 steps
            f"--trainer.default_root_dir={run_dir}", f"--trainer.max_epochs={epochs}",
            "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0",
            "--trainer.enable_progress_bar=false", "--test_after_fit=false",
            f"--trainer.callbacks+={json.dumps(recorder)}"]
    if resume:
        args.append("--ckpt_path=last")
    cli_main(args)


@pytest.mark.parametrize("policy", ["FT2", "FE"])
def test_resume_keeps_frozen_parameters_and_optimizer_groups(tiny_pretrain_ckpt, demo_root, tmp_path, policy):
    run_dir = tmp_path / "run"
    _fit(tiny_pretrain_ckpt, demo_root / "nsynth", run_dir, policy, 1, tmp_path / "first", resume=False)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    _fit(tiny_pretrain_ckpt, demo_root / "nsynth", run_dir, policy, 2, tmp_path / "resumed", resume=True)
    first = torch.load(tmp_path / "first_end.pt", weights_only=False)
    start = torch.load(tmp_path / "resumed_start.pt", weights_only=False)
    end = torch.load(tmp_path / "resumed_end.pt", weights_only=False)

    # it really resumed: epoch 1 starts where epoch 0 ended, from the saved weights
    assert start["epoch"] == 1 and start["global_step"] == first["global_step"] == 3
    assert end["global_step"] == 6
    for name, weight in first["weights"].items():
        assert torch.equal(start["weights"][name], weight), f"{name} not restored exactly"

    # the same parameters are frozen, before and after the resume
    assert first["requires_grad"] == start["requires_grad"] == end["requires_grad"]
    frozen = sorted(n for n, trains in first["requires_grad"].items() if not trains)
    trainable = sorted(n for n, trains in first["requires_grad"].items() if trains)
    if policy == "FT2":
        assert frozen == sorted(n for n in first["weights"] if n.startswith("encoder.feature_extractor."))
    else:
        assert frozen == sorted(n for n in first["weights"] if n.startswith("encoder."))
    assert trainable and all(n.startswith(("head.", "encoder.encoder.")) for n in trainable)
    # ... and stay bit-identical through the resumed epoch, while the trainable ones move
    for name in frozen:
        assert torch.equal(end["weights"][name], first["weights"][name]), f"frozen {name} changed after resume"
    assert any(not torch.equal(end["weights"][n], first["weights"][n]) for n in trainable)

    # optimiser groups: same names, learning rates and parameter membership; no frozen parameter
    assert first["groups"] == start["groups"] == end["groups"]
    expected_lrs = {"head": 1e-3} if policy == "FE" else {"head": 1e-4, "encoder": 1e-5}
    assert {g["name"]: g["lr"] for g in start["groups"]} == pytest.approx(expected_lrs)
    in_groups = [n for g in start["groups"] for n in g["params"]]
    assert sorted(in_groups) == trainable and len(in_groups) == len(set(in_groups))

