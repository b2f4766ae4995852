"""The registry of downstream tasks, keyed by their vocabulary names."""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..vocabulary import TASKS
from .clip_tasks import CLIP_TASK_SPECS
from .manifest import MANIFEST, manifest_spec
from .nsynth import INSTRUMENT, PITCH
from .spec import TaskSpec
from .transcription import MAESTRO_TRANSCRIPTION, MUSICNET_TRANSCRIPTION

TASK_SPECS: dict[str, TaskSpec] = {spec.name: spec for spec in (PITCH, INSTRUMENT, MUSICNET_TRANSCRIPTION,
                                                                MAESTRO_TRANSCRIPTION, *CLIP_TASK_SPECS)}
assert (*TASK_SPECS, MANIFEST) == TASKS, "the registry and the vocabulary name the same tasks, in order"


def task_spec(name: str | None, key: str = "model.init_args.task",
              definition: dict[str, Any] | None = None) -> TaskSpec:
    """The spec of task ``name`` (the manifest task's from its ``definition``); ConfigError naming ``key`` and
    the choices otherwise."""
    if name == MANIFEST:
        return manifest_spec(definition)
    if name not in TASK_SPECS:
        raise ConfigError(f"{key}={name!r}: choose one of {', '.join(TASKS)}")
    return TASK_SPECS[name]
