"""NSynth's two tasks, the paper's Table 1: pitch (112 classes, MIDI 9..120) and instrument family (11)."""
from __future__ import annotations

from ..data.formats import FAMILIES, MAX_PITCH, MIN_PITCH, class_names
from .metrics import ChromaAccuracy
from .spec import SINGLE, ClassificationSpec

PITCH = ClassificationSpec(name="pitch", label_kind=SINGLE, num_outputs=MAX_PITCH - MIN_PITCH + 1,
                           class_names=tuple(class_names("pitch")), axis_label="pitch",
                           demo_config="finetune/demo_pitch", full_config="finetune/nsynth_pitch",
                           extra_metrics={"chroma_acc": lambda _: ChromaAccuracy(MIN_PITCH)})
INSTRUMENT = ClassificationSpec(name="instrument", label_kind=SINGLE, num_outputs=len(FAMILIES),
                                class_names=tuple(class_names("instrument")), axis_label="family",
                                demo_config="finetune/demo_instrument", full_config="finetune/nsynth_instrument")
