"""Training from YAML: the LightningCLI behind ``lightning-w2v fit|validate|test|predict``, and its configs."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: waiting threads sleep, not spin
from .lightning_cli import LightningW2VCLI, cli_entry, main

__all__ = ["LightningW2VCLI", "cli_entry", "main"]
