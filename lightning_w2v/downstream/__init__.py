"""Downstream tasks as data: what a label is, how many outputs, the loss, the metrics (:class:`TaskSpec`).

:class:`~lightning_w2v.tasks.FinetuneModule` holds nothing task-specific: it reads its task's
spec from :func:`task_spec`. Adding a task is one module here and one registry entry.
"""
from .registry import TASK_SPECS, task_spec
from .spec import LABEL_KINDS, ClassificationSpec, TaskSpec

__all__ = ["LABEL_KINDS", "TASK_SPECS", "ClassificationSpec", "TaskSpec", "task_spec"]
