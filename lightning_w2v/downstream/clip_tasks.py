"""The field's clip-level tasks (MARBLE's): genre, tagging, key, emotion.

Each clip is cut into slices and a file's slices' outputs are averaged at validation and test
(:mod:`lightning_w2v.data.clips`); early stopping follows the task's own validation metric
(``monitor``: accuracy, macro ROC-AUC for tagging, the weighted score for key, R² for emotion).
Any labelled folder is the manifest task (:mod:`lightning_w2v.downstream.manifest`).
"""
from __future__ import annotations

from ..data.sets.emomusic import DIMENSIONS
from ..data.sets.giantsteps import KEYS
from ..data.sets.gtzan import GENRES
from ..data.sets.mtt import TOP50
from .metrics import KeyWeightedScore
from .spec import MULTI, REGRESSION, SINGLE, ClassificationSpec, MultiLabelSpec, RegressionSpec

NO_BUDGET = dict(budget_arg="", budget_unit="")  # label efficiency varies NSynth's and transcription's budgets

GTZAN_GENRE = ClassificationSpec(name="gtzan_genre", label_kind=SINGLE, num_outputs=len(GENRES), class_names=GENRES,
                                 axis_label="genre", demo_config="finetune/gtzan_genre",
                                 full_config="finetune/gtzan_genre", report_metrics=("acc", "acc_top5", "f1_macro"),
                                 **NO_BUDGET)
MTT_TAGGING = MultiLabelSpec(name="mtt_tagging", label_kind=MULTI, num_outputs=len(TOP50), class_names=TOP50,
                             axis_label="tag", demo_config="finetune/mtt_tagging", full_config="finetune/mtt_tagging",
                             primary_metric="auroc_macro", monitor="auroc_macro",
                             report_metrics=("auroc_macro", "ap_macro"), **NO_BUDGET)
GIANTSTEPS_KEY = ClassificationSpec(name="giantsteps_key", label_kind=SINGLE, num_outputs=len(KEYS), class_names=KEYS,
                                    axis_label="key", demo_config="finetune/giantsteps_key",
                                    full_config="finetune/giantsteps_key", primary_metric="key_weighted_score",
                                    monitor="key_weighted_score", report_metrics=("acc", "key_weighted_score"),
                                    extra_metrics={"key_weighted_score": lambda _: KeyWeightedScore(KEYS)},
                                    **NO_BUDGET)
EMOMUSIC = RegressionSpec(name="emomusic", label_kind=REGRESSION, num_outputs=len(DIMENSIONS), class_names=DIMENSIONS,
                          axis_label="dimension", demo_config="finetune/emomusic", full_config="finetune/emomusic",
                          primary_metric="r2", monitor="r2", report_metrics=("r2", "r2_arousal", "r2_valence"),
                          **NO_BUDGET)
CLIP_TASK_SPECS = (GTZAN_GENRE, MTT_TAGGING, GIANTSTEPS_KEY, EMOMUSIC)
