"""Training from YAML: the LightningCLI behind ``lightning-w2v fit|validate|test|predict``, and its configs."""
from .lightning_cli import LightningW2VCLI, cli_entry, main

__all__ = ["LightningW2VCLI", "cli_entry", "main"]
