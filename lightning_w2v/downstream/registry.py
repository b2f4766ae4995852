"""The registry of downstream tasks, keyed by their vocabulary names."""
from __future__ import annotations

from ..errors import ConfigError
from ..vocabulary import TASKS
from .clip_tasks import GTZAN_GENRE
from .nsynth import INSTRUMENT, PITCH
from .spec import TaskSpec
from .transcription import MAESTRO_TRANSCRIPTION, MUSICNET_TRANSCRIPTION

TASK_SPECS: dict[str, TaskSpec] = {spec.name: spec for spec in (PITCH, INSTRUMENT, MUSICNET_TRANSCRIPTION,
                                                                MAESTRO_TRANSCRIPTION, GTZAN_GENRE)}
assert tuple(TASK_SPECS) == TASKS, "the registry and the vocabulary name the same tasks, in order"


def task_spec(name: str | None, key: str = "model.init_args.task") -> TaskSpec:
    """The spec of task ``name``; ConfigError naming ``key`` and the choices otherwise."""
    if name not in TASK_SPECS:
        raise ConfigError(f"{key}={name!r}: choose one of {', '.join(TASK_SPECS)}")
    return TASK_SPECS[name]
