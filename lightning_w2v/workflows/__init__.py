"""Workflows built from training runs: the demo, layer probes and label efficiency, the benchmark.

Each runs real fine-tunings through the same LightningCLI and YAMLs a user runs by hand
(:mod:`.runs`), and writes its tables and figures into a folder of its own.
"""
