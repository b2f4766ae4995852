"""A downstream task as data: :class:`TaskSpec`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

# What a label is: one class per clip (cross-entropy), ... (more kinds join with their tasks)
SINGLE = "single"
LABEL_KINDS = (SINGLE,)


@dataclass(frozen=True)
class TaskSpec:
    """One downstream task.

    name: the task's name in the vocabulary (``data.init_args.task``).
    label_kind: what a label is (:data:`LABEL_KINDS`): ``single``, one class of ``num_outputs``.
    num_outputs: the head's outputs (classes).
    class_names: display names of the outputs (confusion matrices, tables).
    axis_label: what the classes are, for figure axes (e.g. ``pitch``).
    label_key: the batch entry that holds the labels.
    extra_metrics: the task's own metrics beside its kind's, by name (e.g. pitch's chroma accuracy),
        each made by a callable that takes the number of outputs.
    """

    name: str
    label_kind: str
    num_outputs: int
    class_names: tuple[str, ...]
    axis_label: str
    label_key: str = "labels"
    extra_metrics: dict[str, Callable[[int], Metric]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(f"task {self.name}: label_kind must be one of {LABEL_KINDS}, got {self.label_kind!r}")

    def loss(self, outputs: Tensor, labels: Tensor) -> Tensor:
        """(B, num_outputs) head outputs and (B,) labels -> () loss, in float32."""
        return nn.functional.cross_entropy(outputs.float(), labels)

    def metrics(self, stage: str) -> MetricCollection:
        """The task's metrics for one split, keys ``"{stage}/name"`` (one object per split)."""
        k = self.num_outputs
        metrics: dict[str, Any] = {
            "acc": MulticlassAccuracy(num_classes=k, average="micro"),
            "acc_top5": MulticlassAccuracy(num_classes=k, top_k=5, average="micro"),
            "f1_macro": MulticlassF1Score(num_classes=k, average="macro"),
            **{name: make(k) for name, make in self.extra_metrics.items()},
        }
        # compute_groups=False: torchmetrics may otherwise merge acc_top5 and f1_macro into one
        # state group after a one-class first batch and report F1 from top-5 counts.
        return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)

    def confusion_matrix(self) -> Metric:
        """The test split's confusion matrix (rows: true classes)."""
        return MulticlassConfusionMatrix(num_classes=self.num_outputs)

    @staticmethod
    def predictions(outputs: Tensor) -> Tensor:
        """(B, num_outputs) -> (B,) predicted classes."""
        return outputs.argmax(dim=-1)
