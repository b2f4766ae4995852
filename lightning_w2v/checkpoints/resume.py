"""Does a checkpoint fit the run it is given to? Checked before the trainer starts.

``--ckpt_path`` continues (``fit``) or evaluates (``validate``/``test``/``predict``) a run
from one of its checkpoints. Lightning would load any checkpoint whose weights happen to
fit, and LightningCLI would even replace the run's model settings with the checkpoint's.
Here the run's own config decides, and the checkpoint must match it:

- the kind: a pre-training run resumes from a pre-training checkpoint, a fine-tuning run
  from a fine-tuning one;
- the architecture (the stored encoder architecture against the encoder this run built);
- for fine-tuning, the task (the head's classes), the policy (what trains, and the optimiser's
  parameter groups) and the layer the head reads.

Any mismatch is a :class:`CheckpointError` that names both sides. Other settings (a learning
rate, masking) may change on resume; the differences are returned so the CLI can say so.
"""
from __future__ import annotations

from typing import Any

from ..errors import CheckpointError
from ..models.config import Wav2Vec2Config
from .reader import Checkpoint

FINETUNE_MUST_MATCH = ("task", "policy", "layer")
RUN_NAMES = {"pretrain": "a pre-training run (PretrainModule)", "finetune": "a fine-tuning run (FinetuneModule)"}
IGNORED_HPARAMS = {"_class_path", "_instantiator", "init_from", "init_mode", "encoder", "results_dir"}


def architecture_differences(stored: dict[str, Any], built: dict[str, Any]) -> list[str]:
    """``"field: stored vs built"`` for each setting the weights depend on that differs: the shape
    settings of two wav2vec 2.0-family configs, every entry of any other encoder's architecture."""
    if "encoder" not in stored and "encoder" not in built:  # both wav2vec 2.0 family: shapes only
        return Wav2Vec2Config.from_dict(stored).architecture_differences(Wav2Vec2Config.from_dict(built))
    return [f"{name}: {stored.get(name)} vs {built.get(name)}" for name in sorted(set(stored) | set(built))
            if stored.get(name) != built.get(name)]


def check_fits(checkpoint: Checkpoint, kind: str, architecture: dict[str, Any], hparams: dict[str, Any],
               key: str = "--ckpt_path") -> list[str]:
    """Raise :class:`CheckpointError` unless ``checkpoint`` fits a run of ``kind`` whose encoder has
    ``architecture`` and whose settings are ``hparams``; return ``"name: checkpoint -> run"`` for the
    other settings that differ."""
    where = f"{key} {checkpoint.path}"
    if checkpoint.kind != kind:
        raise CheckpointError(
            f"{where} is {checkpoint.description}, but this run is {RUN_NAMES[kind]}: "
            f"give it one of its own checkpoints, or run the config that wrote this one")
    differences = architecture_differences(checkpoint.architecture(), architecture)
    if differences:
        raise CheckpointError(
            f"{where} has another architecture than this run ({'; '.join(differences)}, checkpoint vs run): "
            "set the model options the checkpoint was trained with (e.g. --model.init_args.preset), "
            "or start without --ckpt_path")
    saved = checkpoint.hparams
    if kind == "finetune":
        clashes = [f"{name}: {saved.get(name)!r} vs {hparams.get(name)!r}" for name in FINETUNE_MUST_MATCH
                   if name in saved and str(saved.get(name)) != str(hparams.get(name))]
        if clashes:
            raise CheckpointError(
                f"{where} was fine-tuned with other settings ({'; '.join(clashes)}, checkpoint vs run): "
                "use the same --model.init_args values as the run that wrote it")
    return [f"{name}: {saved[name]!r} -> {hparams[name]!r}" for name in sorted(set(saved) & set(hparams))
            if name not in IGNORED_HPARAMS and name not in FINETUNE_MUST_MATCH and saved[name] != hparams[name]]
