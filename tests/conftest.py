"""Shared pytest fixtures."""
from __future__ import annotations

import os

import pytest

# Tests never talk to W&B servers and never prompt.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _seed_everything():
    import torch

    torch.manual_seed(0)
    yield
