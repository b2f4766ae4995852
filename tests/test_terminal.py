"""What a run does to the terminal: threads fitted to the cores other processes leave free, few log lines."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytorch_lightning as pl
import torch

from lightning_w2v.runner.terminal import LogLines, busy_cores_of_others


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        pass


def test_busy_cores_count_other_processes_and_not_this_one():
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(stop,))
    spinner.start()
    try:
        while_we_spin = busy_cores_of_others(0.5)   # one core busy, but it is ours
    finally:
        stop.set()
        spinner.join()
    other = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        while_another_spins = busy_cores_of_others(0.5)  # one core busy in another process
    finally:
        other.kill()
        other.wait()
    assert while_another_spins >= while_we_spin + 0.6, (while_we_spin, while_another_spins)


class _Regression(pl.LightningModule):
    """The smallest module that trains and validates."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_long_run_prints_a_few_dozen_lines_in_a_log_and_its_last_validation(tmp_path, capsys):
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(66, 4)), batch_size=2)
    trainer = pl.Trainer(max_epochs=60, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1,
                         default_root_dir=tmp_path, callbacks=[LogLines()])
    trainer.fit(_Regression(), loader, loader)  # 60 epochs of 33 steps: 1980 steps, 60 validations
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("step ", "epoch "))]
    steps = [line for line in lines if line.startswith("step ")]
    validations = [line for line in lines if line.startswith("epoch ")]
    assert 8 <= len(steps) <= 10 and steps[0].startswith("step 198/1980")
    assert len(validations) <= 11 and validations[-1].startswith("epoch 59 (step 1980)")
