"""``encoder.source: checkpoint``: our own pre-training or fine-tuning checkpoints (.ckpt)."""
from __future__ import annotations

from pathlib import Path

from ...checkpoints.reader import Checkpoint, read_checkpoint
from ...errors import CheckpointError
from ...models.backbone import Wav2Vec2Backbone
from ...models.wav2vec2 import Wav2Vec2ForPretraining
from ..source import EncoderSource


def backbone_from_checkpoint(path: str | Path | Checkpoint, preset: str | None = None,
                             key: str = "model.init_args.encoder.path") -> Wav2Vec2Backbone:
    """Backbone weights from one of our pre-training or fine-tuning checkpoints (strict)."""
    checkpoint = path if isinstance(path, Checkpoint) else read_checkpoint(path, key)
    config = checkpoint.config(preset)
    backbone = Wav2Vec2Backbone(config)
    weights = checkpoint.backbone_weights()
    expected = backbone.state_dict()
    mismatched = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in weights.items() if k in expected and v.shape != expected[k].shape]
    missing = sorted(set(expected) - set(weights))
    if mismatched or missing:
        detail = "; ".join(mismatched[:3] + [f"missing {k}" for k in missing[:3]])
        fits = f"the preset {preset!r}" if preset else "its stored config"
        raise CheckpointError(f"{key}={checkpoint.path} does not fit {fits}: {detail}; use the preset the "
                              "checkpoint was trained with")
    backbone.load_state_dict({k: v for k, v in weights.items() if k in expected})
    return backbone


def pretraining_model_of(checkpoint: Checkpoint) -> Wav2Vec2ForPretraining:
    """The whole pre-training model of one of our pre-training checkpoints (train mode)."""
    model = Wav2Vec2ForPretraining(checkpoint.config(), checkpoint.objective())
    model.load_state_dict(checkpoint.weights("model."))
    return model


def load_pretraining_model(path: str | Path, key: str = "checkpoint") -> Wav2Vec2ForPretraining:
    """Our pre-training checkpoint -> ``Wav2Vec2ForPretraining`` (quantizer included), eval mode."""
    if Path(str(path)).expanduser().is_dir():  # a transformers folder, HuBERT, WavLM, MERT, ...: no codebook
        raise CheckpointError(f"{key}={path} is a folder; this needs one of our pre-training checkpoints (.ckpt), "
                              "the only encoders here with a quantizer (codebooks)")
    checkpoint = read_checkpoint(path, key)
    if checkpoint.kind != "pretrain":
        raise CheckpointError(f"{key}={checkpoint.path} is {checkpoint.description}; this needs a pre-training "
                              "checkpoint (the quantizer is only there)")
    return pretraining_model_of(checkpoint).eval()


class CheckpointSource(EncoderSource):
    name = "checkpoint"
    summary = "one of our pre-training or fine-tuning checkpoints (.ckpt)"
    path_is_file = True
    takes_preset = True
    carries_training_state = True

    def build(self, key: str) -> Wav2Vec2Backbone:
        return backbone_from_checkpoint(self.path, self.spec.preset, key)

    def num_hidden_states(self, key: str) -> int:
        return int(read_checkpoint(self.path, key).config(self.spec.preset).num_layers) + 1

    def label(self) -> str:
        return "music"  # the paper's "w2v2 music": a model pre-trained here

    def pretraining_model(self, key: str) -> Wav2Vec2ForPretraining | None:
        checkpoint = read_checkpoint(self.path, key)
        return pretraining_model_of(checkpoint) if checkpoint.kind == "pretrain" else None

    def has_quantizer(self, key: str) -> bool:
        if Path(self.path).expanduser().is_dir():  # a model folder (another source): no checkpoint of ours
            return False
        return read_checkpoint(self.path, key).kind == "pretrain"
