"""A downstream task as data: :class:`TaskSpec`, and its clip-level classification kind.

The module that fine-tunes (:class:`~lightning_w2v.tasks.FinetuneModule`) calls only what a
spec offers: the targets of a batch, the loss, the metrics and their inputs, the test
artefacts. Four kinds: one class per clip (:class:`ClassificationSpec`: NSynth pitch and
instrument, genre, key), several (:class:`MultiLabelSpec`: tagging), numbers
(:class:`RegressionSpec`: emotion) and frame-level multi-hot labels
(:class:`~lightning_w2v.downstream.frames.FrameTaskSpec`: polyphonic transcription).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MultilabelAUROC,
    MultilabelAveragePrecision,
)
from torchmetrics.regression import R2Score

# What a label is: one class per clip (cross-entropy), several classes per clip (binary cross-entropy),
# numbers per clip (mean squared error), or a set of active outputs per frame (binary cross-entropy)
SINGLE, MULTI, REGRESSION, FRAMES = "single", "multi", "regression", "frames"
LABEL_KINDS = (SINGLE, MULTI, REGRESSION, FRAMES)


@dataclass(frozen=True)
class TaskSpec:
    """One downstream task.

    name: the task's name in the vocabulary (``data.init_args.task``).
    label_kind: what a label is (:data:`LABEL_KINDS`).
    num_outputs: the head's outputs (classes, or keys and instruments per frame).
    class_names: display names of the outputs (confusion matrices, piano rolls, tables).
    axis_label: what the outputs are, for figure axes (e.g. ``pitch``).
    demo_config, full_config, primary_metric, budget_arg, budget_unit: what the workflows (layer
    probes, label efficiency, the demo) need to run the task and report it.
    """

    name: str
    label_kind: str
    num_outputs: int
    class_names: tuple[str, ...]
    axis_label: str
    demo_config: str = ""  # the packaged config of the task on the demo data ("" when there is none)
    full_config: str = ""  # the packaged config of the task on the real data set
    primary_metric: str = "acc"  # what the workflows report and plot, as ``test/<name>``
    budget_arg: str = "few_shot_k"  # the data setting label efficiency varies ...
    budget_unit: str = "training notes per class"  # ... and what it counts
    report_metrics: tuple[str, ...] = ("acc", "acc_top5", "f1_macro", "chroma_acc")  # the workflows' columns
    monitor: str = "acc"  # the validation metric (higher is better) that ``val/monitor`` repeats for early stopping

    def __post_init__(self) -> None:
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(f"task {self.name}: label_kind must be one of {LABEL_KINDS}, got {self.label_kind!r}")

    @property
    def per_frame(self) -> bool:
        """Outputs per frame (a frame head), and whole recordings at test (run in windows)."""
        return self.label_kind == FRAMES

    def targets(self, batch: dict, frame_times: Tensor | None = None) -> Tensor:
        """The batch's targets; frame-level tasks place them at ``frame_times`` (T,) seconds."""
        raise NotImplementedError

    def loss(self, outputs: Tensor, targets: Tensor, valid: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def metrics(self, stage: str) -> MetricCollection:
        """The task's metrics for one split, keys ``"{stage}/name"`` (one object per split)."""
        raise NotImplementedError

    def metric_inputs(self, outputs: Tensor, targets: Tensor, valid: Tensor | None) -> tuple:
        """What the metrics' ``update`` takes."""
        return (outputs.float(), targets)

    def confusion_matrix(self) -> Metric | None:
        """The test split's confusion matrix, for single-label tasks."""
        return None

    def recording_scores(self, probabilities: np.ndarray, times: np.ndarray, frame_period: float,
                         notes: np.ndarray) -> dict[str, float]:
        """Scores of one whole test recording, for frame-level tasks."""
        return {}


@dataclass(frozen=True)
class ClassificationSpec(TaskSpec):
    """One class per clip: cross-entropy, accuracy (top-1, top-5) and macro F1.

    label_key: the batch entry that holds the labels.
    extra_metrics: the task's own metrics beside its kind's, by name (e.g. pitch's chroma
        accuracy), each made by a callable that takes the number of outputs.
    """

    label_key: str = "labels"
    extra_metrics: dict[str, Callable[[int], Metric]] = field(default_factory=dict)

    def targets(self, batch: dict, frame_times: Tensor | None = None) -> Tensor:
        return batch[self.label_key]

    def loss(self, outputs: Tensor, targets: Tensor, valid: Tensor | None = None) -> Tensor:
        """(B, num_outputs) head outputs and (B,) labels -> () loss, in float32."""
        return nn.functional.cross_entropy(outputs.float(), targets)

    def metrics(self, stage: str) -> MetricCollection:
        k = self.num_outputs
        metrics: dict[str, Any] = {"acc": MulticlassAccuracy(num_classes=k, average="micro")}
        if k > 5:  # top-5 of five classes or fewer is always right
            metrics["acc_top5"] = MulticlassAccuracy(num_classes=k, top_k=5, average="micro")
        metrics["f1_macro"] = MulticlassF1Score(num_classes=k, average="macro")
        metrics.update({name: make(k) for name, make in self.extra_metrics.items()})
        # compute_groups=False: torchmetrics may otherwise merge acc_top5 and f1_macro into one
        # state group after a one-class first batch and report F1 from top-5 counts.
        return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)

    def confusion_matrix(self) -> Metric:
        return MulticlassConfusionMatrix(num_classes=self.num_outputs)


@dataclass(frozen=True)
class MultiLabelSpec(TaskSpec):
    """Several classes per clip (tagging): binary cross-entropy, macro ROC-AUC and macro average precision
    over the outputs (each output's score over the clips, then the mean)."""

    label_key: str = "labels"

    def targets(self, batch: dict, frame_times: Tensor | None = None) -> Tensor:
        return batch[self.label_key]

    def loss(self, outputs: Tensor, targets: Tensor, valid: Tensor | None = None) -> Tensor:
        return nn.functional.binary_cross_entropy_with_logits(outputs.float(), targets.float())

    def metrics(self, stage: str) -> MetricCollection:
        k = self.num_outputs
        return MetricCollection({"auroc_macro": MultilabelAUROC(num_labels=k, average="macro"),
                                 "ap_macro": MultilabelAveragePrecision(num_labels=k, average="macro")},
                                prefix=f"{stage}/", compute_groups=False)

    def metric_inputs(self, outputs: Tensor, targets: Tensor, valid: Tensor | None) -> tuple:
        return (torch.sigmoid(outputs.float()), targets.long())


@dataclass(frozen=True)
class RegressionSpec(TaskSpec):
    """Numbers per clip (e.g. valence and arousal): mean squared error, R² per output and their mean."""

    label_key: str = "targets"

    def targets(self, batch: dict, frame_times: Tensor | None = None) -> Tensor:
        return batch[self.label_key]

    def loss(self, outputs: Tensor, targets: Tensor, valid: Tensor | None = None) -> Tensor:
        return nn.functional.mse_loss(outputs.float(), targets.float())

    def metrics(self, stage: str) -> MetricCollection:
        metrics: dict[str, Any] = {"r2": R2Score(multioutput="uniform_average")}
        for index, name in enumerate(self.class_names):
            metrics[f"r2_{name}"] = OutputSlice(R2Score(), index)
        return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)

    def metric_inputs(self, outputs: Tensor, targets: Tensor, valid: Tensor | None) -> tuple:
        return (outputs.float(), targets.float())


class OutputSlice(Metric):
    """Feeds one output (column) of (N, K) outputs and targets to a metric."""

    full_state_update = False

    def __init__(self, metric: Metric, index: int) -> None:
        super().__init__()
        self.metric, self.index = metric, index

    def update(self, outputs: Tensor, targets: Tensor) -> None:
        self.metric.update(outputs[:, self.index], targets[:, self.index])

    def compute(self) -> Tensor:
        return self.metric.compute()

    def reset(self) -> None:
        super().reset()
        self.metric.reset()
