"""The field's clip-level tasks (MARBLE's and HEAR's): genre, tagging, key, emotion; and any labelled folder.

Each clip is cut into slices and a file's slices' outputs are averaged at validation and test
(:mod:`lightning_w2v.data.clips`); early stopping follows the task's own validation metric
(``monitor``: accuracy, macro ROC-AUC for tagging, R² for emotion).
"""
from __future__ import annotations

from ..data.sets.gtzan import GENRES
from .spec import SINGLE, ClassificationSpec

GTZAN_GENRE = ClassificationSpec(name="gtzan_genre", label_kind=SINGLE, num_outputs=len(GENRES), class_names=GENRES,
                                 axis_label="genre", demo_config="finetune/gtzan_genre",
                                 full_config="finetune/gtzan_genre", report_metrics=("acc", "acc_top5", "f1_macro"),
                                 budget_arg="", budget_unit="")
