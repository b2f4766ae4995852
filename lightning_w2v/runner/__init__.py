"""Training from YAML: the LightningCLI runner behind ``lightning-w2v fit|validate|test|predict``.

It sits below everything that calls it (the front door in :mod:`lightning_w2v.commands`, the
workflows) and imports none of them.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: waiting threads sleep, not spin
from .lightning_cli import LightningW2VCLI, run_cli

__all__ = ["LightningW2VCLI", "run_cli"]
