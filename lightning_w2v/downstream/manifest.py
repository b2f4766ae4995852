"""The manifest task: any labelled folder, described by a CSV or JSON-lines file, no code.

Its kind follows from the manifest's columns (:mod:`lightning_w2v.data.sets.manifest`): ``label``
(one class per clip), ``labels`` (several, ``;``-separated) or ``target_<name>`` (numbers). The
data module reads the manifest and hands the model a *definition*, ``{"kind": ..., "names": [...]}``
(the classes, tags or target names); the model keeps it in its hyper-parameters, so a checkpoint
reloads without the manifest.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..vocabulary import MANIFEST_TASK as MANIFEST
from .spec import MULTI, REGRESSION, SINGLE, ClassificationSpec, MultiLabelSpec, RegressionSpec, TaskSpec

KIND_METRICS = {  # kind -> (the early-stopping metric, the table's columns)
    SINGLE: ("acc", ("acc", "f1_macro")),
    MULTI: ("auroc_macro", ("auroc_macro", "ap_macro")),
    REGRESSION: ("r2", ("r2",)),
}


def manifest_spec(definition: dict[str, Any] | None) -> TaskSpec:
    """The spec of a manifest described by ``definition`` (see the module docstring)."""
    if not definition or definition.get("kind") not in KIND_METRICS or not definition.get("names"):
        raise ConfigError("model.init_args.task_definition: the manifest task needs {kind: single|multi|regression, "
                          "names: [...]}; it is set from data.init_args.manifest, so run it with the manifest data "
                          "module (config finetune/manifest)")
    kind, names = definition["kind"], tuple(str(n) for n in definition["names"])
    monitor, report = KIND_METRICS[kind]
    common = dict(name=MANIFEST, label_kind=kind, num_outputs=len(names), class_names=names, primary_metric=monitor,
                  monitor=monitor, report_metrics=report, full_config="finetune/manifest", budget_arg="",
                  budget_unit="")
    if kind == SINGLE:
        return ClassificationSpec(axis_label="class", **common)
    if kind == MULTI:
        return MultiLabelSpec(axis_label="tag", **common)
    return RegressionSpec(axis_label="target", **common)
