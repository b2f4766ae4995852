"""The package's shape: what may import what, and where a fact or a checkpoint read lives."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lightning_w2v"


def test_the_hear_api_and_the_models_load_no_lightning():
    """The HEAR validator imports lightning_w2v.hear next to TensorFlow, which cannot share a
    process with pytorch_lightning: neither the HEAR API nor models/ may pull it in."""
    code = ("import sys, lightning_w2v.hear, lightning_w2v.models, lightning_w2v.checkpoints.encoders; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning_fabric', "
            "'torchmetrics')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_models_hold_no_lightning_and_no_file_io():
    for file in (PACKAGE / "models").glob("*.py"):
        text = file.read_text()
        assert "pytorch_lightning" not in text, file
        assert "torch.load(" not in text and "torch.save(" not in text, file


def test_one_module_opens_checkpoints():
    opening = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "torch.load(" in p.read_text())
    assert opening == ["checkpoints/reader.py"]


def test_the_16_khz_rate_is_defined_once():
    definitions = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if re.search(r"^\s*SAMPLE_RATE\s*=\s*16_?000", p.read_text(), re.MULTILINE)]
    assert definitions == ["models/config.py"]
