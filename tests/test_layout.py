"""The package's shape: what may import what, and where a fact or a checkpoint read lives.

The layers, bottom to top (docs/architecture.md): the vocabulary, errors and files; models;
data; checkpoints and encoders; downstream task specs; analysis; tasks (the LightningModules)
and callbacks; the LightningCLI runner; the workflows; the front door (commands). A module
imports only from its own layer or below.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lightning_w2v"


def _module_name(file: Path) -> str:
    parts = ["lightning_w2v", *file.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(file: Path) -> set[str]:
    """Absolute names of every module ``file`` imports (relative imports resolved), lazy ones included."""
    module = _module_name(file)
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names |= {f"{prefix}.{alias.name}" for alias in node.names}
    return names


def package_imports() -> dict[str, set[str]]:
    return {str(file.relative_to(PACKAGE)): imports_of(file) for file in PACKAGE.rglob("*.py")}


def _within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def _offenders(where: str, forbidden: tuple[str, ...]) -> list[str]:
    """``file: import`` for each import of a module under ``where`` that falls within a ``forbidden`` module."""
    out = []
    for path, names in package_imports().items():
        if path.startswith(where):
            out += [f"{path}: {n}" for n in sorted(names) if any(_within(n, f) for f in forbidden)]
    return out


def test_the_hear_api_and_the_models_load_no_lightning():
    """The HEAR validator imports lightning_w2v.hear next to TensorFlow, which cannot share a
    process with pytorch_lightning: neither the HEAR API, models/ nor the encoders may pull it in."""
    code = ("import sys, lightning_w2v.hear, lightning_w2v.models, lightning_w2v.encoders; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning_fabric', "
            "'torchmetrics')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_models_import_neither_lightning_nor_data_and_open_no_files():
    assert _offenders("models/", ("pytorch_lightning", "lightning", "torchmetrics", "lightning_w2v.data",
                                  "lightning_w2v.tasks", "lightning_w2v.checkpoints")) == []
    for file in (PACKAGE / "models").glob("*.py"):
        text = file.read_text()
        assert "torch.load(" not in text and "torch.save(" not in text, file


def test_data_imports_none_of_models_tasks_or_analysis():
    upward = tuple(f"lightning_w2v.{name}" for name in ("models", "tasks", "analysis", "encoders", "downstream",
                                                          "checkpoints", "callbacks", "runner", "workflows",
                                                          "commands", "hear"))
    assert _offenders("data/", upward) == []


def test_nothing_imports_the_front_door():
    importers = sorted(path for path, names in package_imports().items()
                       if any(_within(n, "lightning_w2v.commands") for n in names) and not path.startswith("commands/"))
    assert importers == ["__main__.py"]


def test_the_runner_sits_below_its_callers_only():
    """Only the workflows and the front door run the LightningCLI; the runner imports neither."""
    callers = sorted({path.split("/")[0] for path, names in package_imports().items()
                      if any(_within(n, "lightning_w2v.runner") for n in names) and not path.startswith("runner/")})
    assert callers == ["commands", "workflows"]
    assert _offenders("runner/", ("lightning_w2v.workflows", "lightning_w2v.commands")) == []


def test_callbacks_write_no_data_sets():
    assert _offenders("callbacks/", ("lightning_w2v.data.demo", "lightning_w2v.data.download")) == []


def test_help_does_not_load_torch():
    code = ("import sys; from lightning_w2v.commands import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning', 'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_one_module_opens_checkpoints():
    opening = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "torch.load(" in p.read_text())
    assert opening == ["checkpoints/reader.py"]


def test_the_16_khz_rate_is_defined_once():
    definitions = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if re.search(r"^\s*SAMPLE_RATE\s*=\s*16_?000", p.read_text(), re.MULTILINE)]
    assert definitions == ["vocabulary.py"]


def test_the_shared_names_are_defined_once():
    """Task names, policies, presets and encoder sources: the vocabulary's tuples, nowhere else as literals."""
    from lightning_w2v import vocabulary
    from lightning_w2v.models.config import PRESET_BUILDERS
    from lightning_w2v.tasks.policies import POLICY_TABLE

    assert tuple(POLICY_TABLE) == vocabulary.POLICIES
    assert tuple(PRESET_BUILDERS) == vocabulary.PRESETS
    literals = {repr(value) for value in (vocabulary.NSYNTH_TASKS, vocabulary.POLICIES, vocabulary.PRESETS,
                                          vocabulary.ENCODER_SOURCES)}
    for file in PACKAGE.rglob("*.py"):
        if file.name == "vocabulary.py":
            continue
        text = file.read_text()
        assert not [literal for literal in literals if literal in text], file


def test_no_tracked_audio_outside_the_test_fixtures():
    tracked = subprocess.run(["git", "ls-files"], cwd=PACKAGE.parent, capture_output=True, text=True,
                             check=True).stdout.split()
    audio = [path for path in tracked if path.endswith((".wav", ".flac", ".mp3", ".au", ".npy", ".npz"))
             and not path.startswith("tests/fixtures/")]
    assert audio == []


def test_only_the_encoder_registry_branches_on_a_source_name():
    """Outside lightning_w2v/encoders/, no comparison with an encoder source's name (``source == "checkpoint"``,
    ``source in ("checkpoint", "fairseq")``): what differs between sources is the source class's."""
    from lightning_w2v.vocabulary import ENCODER_SOURCES

    def names_a_source(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in ENCODER_SOURCES
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(names_a_source(element) for element in node.elts)
        return False

    branching = []
    for file in PACKAGE.rglob("*.py"):
        if file.relative_to(PACKAGE).parts[0] == "encoders":
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Compare) and any(names_a_source(n) for n in [node.left, *node.comparators]):
                branching.append(f"{file.relative_to(PACKAGE)}:{node.lineno}")
    assert branching == []
