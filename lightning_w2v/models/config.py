"""wav2vec 2.0's settings as two configs: the model (:class:`Wav2Vec2Config`) and how pre-training
trains it (:class:`PretrainingObjective`), with the paper's BASE and two CPU-sized presets.

The defaults are fairseq's ``wav2vec2_base_librispeech`` pre-training config, which the
paper used unchanged on MusicNet (see REFERENCE.md section 2). The model config is what a
checkpoint's weights need (shapes, structure, regularisation, input convention); the
objective (masking, negatives, loss weights, Gumbel temperature, the CNN's gradient scale) is
pre-training's own, and is free to change when pre-training continues from a model.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError
from ..vocabulary import SAMPLE_RATE

# Transformer variants the backbone reproduces: wav2vec 2.0 (also HuBERT and MERT, which share its
# encoder), WavLM (gated relative position bias) and data2vec-audio (a stack of positional convs).
FAMILIES = ("wav2vec2", "wavlm", "data2vec_audio")
ConvLayer = tuple[int, int, int]  # (out_channels, kernel, stride)

BASE_CONV_LAYERS: list[ConvLayer] = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
# Each model setting is one of: "shape" (the weights' shapes or the forward structure: two configs
# that differ in one cannot share weights), "regularisation" or "input" (the checkpoint's input convention).
SHAPE, REGULARISATION, INPUT = "shape", "regularisation", "input"


def _setting(default: Any, kind: str = SHAPE, **kwargs: Any) -> Any:
    if callable(default):
        return field(default_factory=default, metadata={"kind": kind}, **kwargs)
    return field(default=default, metadata={"kind": kind}, **kwargs)


@dataclass
class Wav2Vec2Config:
    """The model: what a checkpoint's weights need, and how its input must look."""

    # --- CNN feature encoder ---
    conv_layers: list[ConvLayer] = _setting(lambda: list(BASE_CONV_LAYERS))
    extractor_mode: str = _setting("group_norm")  # GroupNorm on the first conv only (BASE); "layer_norm" for LARGE
    conv_bias: bool = _setting(False)

    # --- Transformer context network ---
    embed_dim: int = _setting(768)
    num_layers: int = _setting(12)
    num_heads: int = _setting(12)
    ffn_dim: int = _setting(3072)
    layer_norm_first: bool = _setting(False)  # post-LN, as BASE
    pos_conv_kernel: int = _setting(128)
    pos_conv_groups: int = _setting(16)
    family: str = _setting("wav2vec2")  # one of FAMILIES
    pos_conv_layers: int = _setting(1)  # data2vec-audio: 5 convs of kernel 19, each with a LayerNorm and GELU
    num_buckets: int = _setting(320)  # WavLM: relative-position buckets ...
    max_distance: int = _setting(800)  # ... and the distance beyond which they share one bucket
    dropout: float = _setting(0.1, REGULARISATION)
    attention_dropout: float = _setting(0.1, REGULARISATION)
    activation_dropout: float = _setting(0.0, REGULARISATION)
    dropout_input: float = _setting(0.1, REGULARISATION)  # after the feature projection, before masking
    dropout_features: float = _setting(0.1, REGULARISATION)  # on the unmasked CNN features fed to the quantizer
    # The model's own layerdrop; a backbone built for a run may choose another (Wav2Vec2Backbone(layerdrop=...)).
    layerdrop: float = _setting(0.05, REGULARISATION)

    # --- quantizer and projections ---
    num_codevector_groups: int = _setting(2)
    num_codevectors_per_group: int = _setting(320)
    codevector_dim: int = _setting(256)  # split evenly over the groups (128 each)
    final_dim: int = _setting(256)  # project_q / final_proj output

    # --- input convention of the checkpoint (the data are always 16 kHz; see Wav2Vec2Backbone.prepare_input) ---
    sample_rate: int = _setting(SAMPLE_RATE, INPUT)  # the rate the model was trained at (MERT: 24 kHz)
    normalize_waveform: bool = _setting(False, INPUT)  # zero mean, unit variance per clip (large-lv60, XLS-R, MERT)

    def __post_init__(self) -> None:
        self.conv_layers = [tuple(int(v) for v in layer) for layer in self.conv_layers]  # type: ignore[misc]
        problems = []
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}")
        if self.codevector_dim % self.num_codevector_groups:
            problems.append(
                f"codevector_dim={self.codevector_dim} is not divisible by "
                f"num_codevector_groups={self.num_codevector_groups}"
            )
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            problems.append(f"extractor_mode={self.extractor_mode!r} must be 'group_norm' or 'layer_norm'")
        if self.family not in FAMILIES:
            problems.append(f"family={self.family!r} must be one of {', '.join(FAMILIES)}")
        if self.pos_conv_layers != 1 and self.family != "data2vec_audio":
            problems.append(f"pos_conv_layers={self.pos_conv_layers} applies to family='data2vec_audio' only")
        if self.sample_rate <= 0:
            problems.append(f"sample_rate={self.sample_rate} must be positive")
        if not 0.0 <= self.layerdrop <= 1.0:
            problems.append(f"layerdrop={self.layerdrop} must lie in [0, 1]")
        if problems:
            raise ConfigError("invalid model settings (model.init_args.preset / model_overrides): "
                              + "; ".join(problems))

    @property
    def conv_dim(self) -> int:
        return self.conv_layers[-1][0]

    @property
    def downsampling(self) -> int:
        """Samples per output frame (320 for BASE: 20 ms at 16 kHz)."""
        total = 1
        for _, _, stride in self.conv_layers:
            total *= stride
        return total

    @property
    def receptive_field(self) -> int:
        """Samples one CNN frame sees (400 for BASE: 25 ms at 16 kHz)."""
        size, jump = 1, 1
        for _, kernel, stride in self.conv_layers:
            size += (kernel - 1) * jump
            jump *= stride
        return size

    def input_samples(self, num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
        """Samples the CNN sees for ``num_samples`` of audio at ``sample_rate`` (resampled first
        where the model runs at another rate; the length torchaudio's resampler gives)."""
        if self.sample_rate == sample_rate:
            return num_samples
        return math.ceil(num_samples * self.sample_rate / sample_rate)

    def num_frames(self, num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
        """Frames the CNN produces for ``num_samples`` of audio at ``sample_rate`` (the data's 16 kHz)."""
        length = self.input_samples(num_samples, sample_rate)
        for _, kernel, stride in self.conv_layers:
            length = (length - kernel) // stride + 1
        return max(length, 0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["conv_layers"] = [list(layer) for layer in self.conv_layers]
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Wav2Vec2Config":
        """From a stored dict; keys of other settings (0.1 and 0.2 stored the objective here too) are ignored."""
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def architecture_differences(self, other: "Wav2Vec2Config") -> list[str]:
        """``"field: mine vs other"`` for each shape setting (see ARCHITECTURE_FIELDS) that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{name}: {mine[name]} vs {theirs[name]}" for name in ARCHITECTURE_FIELDS
                if mine[name] != theirs[name]]

    def with_overrides(self, **overrides: Any) -> "Wav2Vec2Config":
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"model.init_args.model_overrides: unknown field(s) {', '.join(unknown)}; "
                              f"see Wav2Vec2Config and PretrainingObjective for the settings")
        return replace(self, **overrides)


@dataclass
class PretrainingObjective:
    """How pre-training trains the model: masking, negatives, losses, the Gumbel temperature schedule."""

    feature_grad_mult: float = 0.1  # scales the gradient flowing back into the CNN (0: the CNN is frozen)
    # Gumbel temperature schedule (max, min, decay per update); applied by the training loop.
    temperature_max: float = 2.0
    temperature_min: float = 0.5
    temperature_decay: float = 0.999995
    # --- masking and contrastive objective ---
    mask_prob: float = 0.65
    mask_length: int = 10
    min_masks: int = 2
    require_same_masks: bool = True  # fairseq's default: every row thinned to the batch's smallest masked count
    num_negatives: int = 100
    logit_temperature: float = 0.1
    diversity_loss_weight: float = 0.1
    feature_penalty_weight: float = 10.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.mask_prob <= 1.0:
            problems.append(f"mask_prob={self.mask_prob} must lie in [0, 1]")
        if self.mask_length < 1:
            problems.append(f"mask_length={self.mask_length} must be >= 1")
        if self.num_negatives < 1:
            problems.append(f"num_negatives={self.num_negatives} must be >= 1")
        if not self.temperature_min <= self.temperature_max:
            problems.append("temperature_min must not exceed temperature_max")
        if problems:
            raise ConfigError("invalid pre-training settings (model.init_args.model_overrides): " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PretrainingObjective":
        """From a stored dict; keys of the model config (0.1 and 0.2 stored both in one dict) are ignored."""
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def with_overrides(self, **overrides: Any) -> "PretrainingObjective":
        return replace(self, **overrides)


def _fields_of_kind(kind: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(Wav2Vec2Config) if f.metadata["kind"] == kind)


ARCHITECTURE_FIELDS = _fields_of_kind(SHAPE)
# What may change when pre-training continues from a model: the objective, and the layerdrop a run chooses
CONTINUABLE_FIELDS = frozenset(PretrainingObjective.__dataclass_fields__) | {"layerdrop"}


def split_overrides(overrides: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model_overrides`` (any setting of either config) -> (model settings, objective settings)."""
    overrides = dict(overrides or {})
    objective = {k: v for k, v in overrides.items() if k in PretrainingObjective.__dataclass_fields__}
    model = {k: v for k, v in overrides.items() if k not in objective}
    unknown = sorted(set(model) - set(Wav2Vec2Config.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"model.init_args.model_overrides: unknown field(s) {', '.join(unknown)}; "
                          "see Wav2Vec2Config and PretrainingObjective for the settings")
    return model, objective


def base_config(**overrides: Any) -> Wav2Vec2Config:
    """wav2vec 2.0 BASE exactly as the paper pre-trained it (95M parameters)."""
    return Wav2Vec2Config().with_overrides(**overrides)


def tiny_config(**overrides: Any) -> Wav2Vec2Config:
    """A ~0.3M-parameter model with BASE's structure, for CPU tests and the demo.

    Keeps the 320x down-sampling (so 4 s of NSynth audio still gives 199 frames); shrinks
    widths, depth and the codebook (and, in its objective, the number of negatives).
    """
    tiny = Wav2Vec2Config(
        conv_layers=[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2,
        embed_dim=64,
        num_layers=2,
        num_heads=4,
        ffn_dim=256,
        pos_conv_kernel=16,
        pos_conv_groups=4,
        layerdrop=0.0,  # with 2 layers, dropping one is half the network
        num_codevectors_per_group=32,
        codevector_dim=64,
        final_dim=64,
    )
    return tiny.with_overrides(**overrides)


def small_config(**overrides: Any) -> Wav2Vec2Config:
    """A ~1M-parameter model between ``tiny`` and BASE, for studies a 2-core CPU can run.

    Twice tiny's CNN width (64 channels) and depth (4 Transformer layers of 128), BASE's
    320x down-sampling and structure; about 0.5 s per 24 s batch on 2 CPU cores.
    """
    small = Wav2Vec2Config(
        conv_layers=[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2,
        embed_dim=128,
        num_layers=4,
        num_heads=4,
        ffn_dim=512,
        pos_conv_kernel=32,
        pos_conv_groups=8,
        layerdrop=0.0,  # 4 layers: dropping one is a quarter of the network
        num_codevectors_per_group=64,
        codevector_dim=128,
        final_dim=128,
    )
    return small.with_overrides(**overrides)


PRESET_BUILDERS = {"base": base_config, "small": small_config, "tiny": tiny_config}
# Each preset's objective: BASE's, with fewer negatives and a faster-annealing temperature for the small ones
PRESET_OBJECTIVES = {
    "base": {},
    "small": {"num_negatives": 50, "temperature_decay": 0.998},  # anneal within a couple of thousand steps
    "tiny": {"num_negatives": 20, "temperature_decay": 0.995},  # anneal within the few hundred demo steps
}


def _check_preset(name: str) -> None:
    if name not in PRESET_BUILDERS:
        raise ConfigError(f"model.init_args.preset={name!r}: choose one of {sorted(PRESET_BUILDERS)}")


def preset_config(name: str, **overrides: Any) -> Wav2Vec2Config:
    """The model config of preset ``name`` (model settings only; see :func:`split_overrides`)."""
    _check_preset(name)
    return PRESET_BUILDERS[name](**overrides)


def preset_objective(name: str, **overrides: Any) -> PretrainingObjective:
    """The pre-training objective of preset ``name``, with ``overrides``."""
    _check_preset(name)
    return PretrainingObjective(**{**PRESET_OBJECTIVES[name], **overrides})
