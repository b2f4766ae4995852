"""The packaged YAML configs: named configs, and fragments a config composes.

The top-level ``conf/`` folder is installed as ``lightning_w2v.conf``, so every config can be
named without a path, from any working directory: ``--config pretrain/demo`` is
``conf/pretrain/demo.yaml``. A path to a file works as well, and wins when it exists.

A config may start with ``compose: [name, ...]``: fragments written once (the trainer
profile of a device, the callbacks of a kind of run, or another experiment) that it builds
on. ``--config X`` then stands for ``--config <each fragment> --config X``, so X overrides
its fragments and later ``--config`` files and terminal options override X; list entries
can be extended with ``callbacks+:``. Fragments are named like configs (packaged names, or
paths relative to the composing file) and may compose others in turn.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Sequence

import yaml

from ..errors import ConfigError

COMPOSE_KEY = "compose"
CONFIG_FLAGS = ("--config", "-c")


def conf_root() -> Path:
    """The folder of the packaged configs (``conf/`` in a checkout, ``lightning_w2v/conf`` installed)."""
    return Path(str(importlib.resources.files("lightning_w2v.conf")))


def packaged_configs() -> list[str]:
    """Names of every packaged config and fragment, e.g. ``pretrain/demo``."""
    root = conf_root()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def resolve_config(name: str, relative_to: Path | None = None) -> Path:
    """A config file from a path (as given, or relative to a composing file) or a packaged name."""
    candidates = [Path(name).expanduser()]
    if relative_to is not None:
        candidates.append(relative_to / name)
    root = conf_root()
    candidates += [root / name, root / f"{name}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    shown = ", ".join(packaged_configs())
    raise ConfigError(f"--config {name}: no such file, and no packaged config of that name (packaged: {shown})")


def composed_fragments(path: Path) -> list[str]:
    """The ``compose:`` list of one config file (empty when it has none)."""
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"--config {path}: not a readable YAML file ({error})") from None
    fragments = content.get(COMPOSE_KEY) if isinstance(content, dict) else None
    if fragments is None:
        return []
    if isinstance(fragments, str):
        fragments = [fragments]
    if not isinstance(fragments, list) or not all(isinstance(f, str) for f in fragments):
        raise ConfigError(f"{path}: {COMPOSE_KEY}: must be a list of config names or paths")
    return fragments


def expand_config(name: str, relative_to: Path | None = None, _seen: tuple[Path, ...] = ()) -> list[Path]:
    """The files ``--config name`` stands for: its fragments (recursively, each once), then itself."""
    path = resolve_config(name, relative_to)
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{COMPOSE_KEY}: configs compose each other in a circle ({chain})")
    files: list[Path] = []
    for fragment in composed_fragments(path):
        for file in expand_config(fragment, path.parent, (*_seen, path)):
            if file not in files:
                files.append(file)
    return files + [path]


# Class paths of 0.1 that moved in 0.2: named in an error rather than left to jsonargparse's usage text
MOVED_CLASS_PATHS = {
    "lightning_w2v.loggers.WandbLogger": "lightning_w2v.callbacks.WandbLogger",
    "lightning_w2v.monitor.PretrainHealthMonitor": "lightning_w2v.callbacks.PretrainHealthMonitor",
    "lightning_w2v.probing.LayerWeightsLogger": "lightning_w2v.callbacks.LayerWeightsLogger",
}


def check_moved_class_paths(text: str, where: str) -> None:
    """ConfigError naming ``where`` if ``text`` (a config file or an argument) uses a moved class path."""
    for old, new in MOVED_CLASS_PATHS.items():
        if old in text:
            raise ConfigError(f"{where} uses {old}, which moved in 0.2: write {new} instead (see CHANGELOG.md)")


def expand_config_args(argv: Sequence[str]) -> list[str]:
    """Command-line arguments with every ``--config NAME`` resolved and its fragments put before it
    (and a moved 0.1 class path in any of them named, see :data:`MOVED_CLASS_PATHS`)."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        value = None
        if arg in CONFIG_FLAGS and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif arg.startswith("--config="):
            value, i = arg[len("--config="):], i + 1
        else:
            check_moved_class_paths(arg, f"the argument {arg}")
            out.append(arg)
            i += 1
            continue
        if value.lstrip().startswith("{"):  # an inline YAML config, as jsonargparse allows
            check_moved_class_paths(value, "the inline --config")
            out += ["--config", value]
            continue
        for file in expand_config(value):
            check_moved_class_paths(file.read_text(encoding="utf-8", errors="replace"), f"--config {file}")
            out += ["--config", str(file)]
    return out
