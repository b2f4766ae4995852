"""Where an encoder comes from: our checkpoint, a torchaudio bundle, transformers, fairseq, or random.

:class:`EncoderSpec` names a source (what fine-tuning, continued pre-training, HEAR, the
probes and the analyses take); :func:`load_encoder` turns it into a
:class:`~lightning_w2v.models.Wav2Vec2Backbone`. Every file is opened through
:mod:`.reader`, once; the conversions themselves are pure functions in
:mod:`lightning_w2v.models.interop`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torchaudio.pipelines

from ..errors import CheckpointError, ConfigError
from ..models import interop
from ..models.backbone import Wav2Vec2Backbone
from ..models.config import OBJECTIVE_FIELDS, SAMPLE_RATE, preset_config
from ..models.wav2vec2 import Wav2Vec2ForPretraining
from .reader import Checkpoint, load_file, read_checkpoint

log = logging.getLogger(__name__)
SOURCES = ("checkpoint", "torchaudio", "huggingface", "fairseq", "random")
KEY = "model.init_args.encoder.path"


@dataclass
class EncoderSpec:
    """Which pre-trained encoder to fine-tune.

    source: ``checkpoint`` (ours: a pre-training or fine-tuning .ckpt), ``torchaudio`` (a
        pipeline bundle name, e.g. WAV2VEC2_BASE, the paper's speech baseline),
        ``huggingface`` (a transformers model directory or hub id), ``fairseq`` (a wav2vec 2.0
        .pt), or ``random`` (untrained, an ablation).
    path: the checkpoint file, bundle name, directory/hub id, or .pt file.
    preset: architecture for ``random``; for ``checkpoint`` an optional check that the
        checkpoint has this shape (by default its own stored config is used).
    label: how the encoder is named in results tables (default: derived from the source).
    """

    source: str = "checkpoint"
    path: str | None = None
    preset: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"model.init_args.encoder.source={self.source!r}: choose one of {', '.join(SOURCES)}")
        if self.source != "random" and not self.path:
            raise ConfigError(f"set --{KEY} (required for encoder.source={self.source!r})")

    @property
    def display_label(self) -> str:
        """The row name in results tables: ``label``, else the model's own name (the paper's
        ``music`` / ``speech`` / ``random`` for ours, WAV2VEC2_BASE and untrained encoders)."""
        if self.label:
            return self.label
        if self.source == "checkpoint":
            return "music"
        if self.source == "random":
            return "random"
        if self.source == "torchaudio":
            return "speech" if self.path == "WAV2VEC2_BASE" else str(self.path).lower()
        name = Path(str(self.path).rstrip("/")).name  # a model folder, a hub id's name or a .pt file
        return Path(name).stem if self.source == "fairseq" else name


def load_encoder(spec: EncoderSpec, key: str = KEY) -> Wav2Vec2Backbone:
    """The backbone ``spec`` names; :class:`CheckpointError` naming ``key`` if it cannot be read."""
    if spec.source == "random":
        return Wav2Vec2Backbone(preset_config(spec.preset or "base"))
    if spec.source == "checkpoint":
        return backbone_from_checkpoint(spec.path, spec.preset, key)
    if spec.source == "torchaudio":
        return backbone_from_torchaudio_bundle(spec.path)
    if spec.source == "huggingface":
        return backbone_from_huggingface(spec.path)
    return interop.backbone_from_fairseq(load_file(spec.path, key))


# transformers model type -> the class holding its encoder. Each one's every hidden state is
# reproduced by the backbone (tests/test_encoder_families.py); other types are refused by name.
HF_MODEL_CLASSES = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel",
                    "data2vec-audio": "Data2VecAudioModel"}
# MERT-v1 and music2vec ship a HuBERT backbone behind custom code; their weights map onto HubertModel.
MERT_MODEL_TYPES = ("mert_model", "music2vec")
# Weights of pre-training or CTC heads that an encoder-only load leaves out on purpose
HEAD_PREFIXES = ("quantizer.", "project_q.", "project_hid.", "lm_head.", "final_proj.", "label_embeddings_concat")


def backbone_from_huggingface(path: str | Path) -> Wav2Vec2Backbone:
    """A transformers model directory (or hub id) of any supported family -> backbone, exactly.

    The input convention (sample rate, ``do_normalize``) comes from the directory's
    ``preprocessor_config.json``, as transformers' own feature extractor would apply it.
    """
    values = huggingface_config_dict(path)
    model_type = values.get("model_type")
    if values.get("feat_proj_layer_norm", True) is False:  # HuBERT/MERT may drop it; the backbone needs it
        raise CheckpointError(f"{KEY}={path} sets feat_proj_layer_norm=False (no LayerNorm before the feature "
                              "projection); this version loads only models that have it")
    if model_type in MERT_MODEL_TYPES:
        model = mert_as_hubert(path, values)
    elif model_type in HF_MODEL_CLASSES:
        model = huggingface_model(path, HF_MODEL_CLASSES[model_type])
    else:
        raise CheckpointError(f"{KEY}={path} is a transformers {model_type!r} model; this version loads "
                              f"{', '.join([*HF_MODEL_CLASSES, *MERT_MODEL_TYPES])} models exactly and refuses "
                              "others rather than give wrong features")
    sample_rate, normalize = huggingface_input_convention(path, values)
    return interop.backbone_from_huggingface(model, sample_rate, normalize)


def huggingface_config_dict(path: str | Path) -> dict:
    """The ``config.json`` of a transformers directory / hub id as a dict, without running any code."""
    import transformers  # optional: only transformers sources need it

    try:
        values, _ = transformers.PretrainedConfig.get_config_dict(str(path))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{KEY}={path} is not a transformers model directory or hub id ({error})") from None
    return values


def huggingface_input_convention(path: str | Path, values: dict) -> tuple[int, bool]:
    """(sample rate, normalise) from ``preprocessor_config.json``; without one, the config's
    ``sample_rate`` (MERT writes it there) or 16 kHz, and no normalisation."""
    import transformers  # optional: only transformers sources need it

    try:
        extractor, _ = transformers.Wav2Vec2FeatureExtractor.get_feature_extractor_dict(str(path))
    except (OSError, ValueError):
        extractor = {}
    sample_rate = int(extractor.get("sampling_rate") or values.get("sample_rate") or SAMPLE_RATE)
    normalize = bool(extractor.get("do_normalize", False))
    if sample_rate != SAMPLE_RATE or normalize:
        log.info("%s expects %d Hz audio%s: the 16 kHz data are converted on the fly", path, sample_rate,
                 ", normalised per clip" if normalize else "")
    return sample_rate, normalize


def mert_as_hubert(path: str | Path, values: dict):
    """A MERT-v1-style checkpoint (HuBERT saved with custom code) as a transformers ``HubertModel``.

    Its remote code never runs: the settings in its ``config.json`` become a ``HubertConfig``
    and its weight files are loaded by ``HubertModel``, strictly. Settings that change the
    computation away from HuBERT (the CQT branch, DeepNorm residuals, no projection
    LayerNorm) are refused by name, and so is any weight that does not map.
    """
    import tempfile

    import transformers  # optional: only transformers sources need it

    unsupported = {"feature_extractor_cqt": False, "deepnorm": False, "feat_proj_layer_norm": True}
    differs = [f"{name}={values[name]!r}" for name, wanted in unsupported.items()
               if name in values and values[name] != wanted]
    if differs:
        raise CheckpointError(f"{KEY}={path}: this MERT checkpoint sets {', '.join(differs)}, which HuBERT's "
                              f"computation does not have; only MERT checkpoints with "
                              f"{', '.join(f'{k}={v}' for k, v in unsupported.items())} load exactly")
    folder = _local_folder(path)
    # attention_relax acts only in MERT's DeepNorm layers (refused above): HuBERT's attention otherwise
    skip = {"model_type", "architectures", "auto_map", "transformers_version", *unsupported, "attention_relax"}
    config = transformers.HubertConfig(**{k: v for k, v in values.items() if k not in skip})
    weights = sorted(file for file in folder.iterdir()
                     if file.suffix in (".safetensors", ".bin") or file.name.endswith(".index.json"))
    if not weights:
        raise CheckpointError(f"{KEY}={path} holds no weight file (model.safetensors or pytorch_model.bin)")
    with tempfile.TemporaryDirectory(prefix="lightning-w2v-mert-") as staged:
        config.save_pretrained(staged)
        for file in weights:  # the weights stay where they are; only the config is rewritten
            (Path(staged) / file.name).symlink_to(file.resolve())
        return huggingface_model(staged, "HubertModel", shown_as=path)


def _local_folder(path: str | Path) -> Path:
    """A local model directory, or the hub snapshot of a hub id (downloaded where a network exists)."""
    folder = Path(str(path)).expanduser()
    if folder.is_dir():
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(path), allow_patterns=["*.json", "*.safetensors", "*.bin"]))
    except Exception as error:  # noqa: BLE001 - offline, unknown id, ...: all one answer
        raise CheckpointError(f"{KEY}={path} is neither a local directory nor a reachable hub id ({error})") from None


def huggingface_model(path: str | Path, class_name: str = "Wav2Vec2Model", shown_as: str | Path | None = None):
    """``transformers.<class_name>`` from a local directory (or a hub id, where a network exists),
    loaded strictly: any weight of ``class_name`` that the directory does not hold (it would
    be freshly initialised), and any that does not fit, is a :class:`CheckpointError`."""
    import transformers  # optional: only transformers sources need it

    shown_as = shown_as or path
    try:
        model, info = getattr(transformers, class_name).from_pretrained(str(path), output_loading_info=True)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{KEY}={shown_as} is not a transformers model directory or hub id ({error})") from None
    missing = sorted(info["missing_keys"])
    if class_name == "Wav2Vec2ForPreTraining":  # a model without its pre-training head: the caller checks
        missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith(HEAD_PREFIXES))
    mismatched = sorted(str(k[0]) if isinstance(k, (tuple, list)) else str(k) for k in info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        parts = [f"{label} {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
                 if keys]
        raise CheckpointError(f"{KEY}={shown_as}: its weights do not load into {class_name} exactly "
                              f"({'; '.join(parts)}); a checkpoint is used only when every weight loads")
    return model


def huggingface_has_quantizer(path: str | Path) -> bool:
    """Whether a transformers model directory / hub id holds pre-training head weights."""
    import transformers  # optional: only transformers sources need it

    if huggingface_config_dict(path).get("model_type") != "wav2vec2":  # only wav2vec 2.0 has a quantizer
        return False
    try:
        _, info = transformers.Wav2Vec2ForPreTraining.from_pretrained(str(path), output_loading_info=True)
    except (OSError, ValueError):
        return False
    return not any(key.startswith("quantizer.") for key in info["missing_keys"])


# The torchaudio pipeline bundles of the families the backbone reproduces (wav2vec 2.0, XLS-R, HuBERT, WavLM)
TORCHAUDIO_MODEL_TYPES = ("Wav2Vec2", "HuBERT", "WavLM")


def backbone_from_torchaudio_bundle(name: str) -> Wav2Vec2Backbone:
    """``torchaudio.pipelines.<name>`` (WAV2VEC2_BASE, the speech baseline; HUBERT_*, WAVLM_*,
    WAV2VEC2_XLSR*, ...) -> backbone, with the bundle's sample rate and waveform normalisation.

    torchaudio downloads the bundle's weights on first use (torch hub cache).
    """
    bundle = torchaudio_bundle(name)
    return interop.backbone_from_torchaudio(bundle.get_model(), bundle._params, bundle.sample_rate,
                                           bundle._normalize_waveform)


def torchaudio_bundle(name: str):
    """The pipeline bundle ``name``, checked before anything is downloaded."""
    bundle = getattr(torchaudio.pipelines, str(name), None)
    if bundle is None or not hasattr(bundle, "get_model") or not hasattr(bundle, "_params"):
        raise ConfigError(f"{KEY}={name!r}: torchaudio.pipelines has no wav2vec 2.0, HuBERT or WavLM bundle of "
                          "that name (try WAV2VEC2_BASE, HUBERT_BASE or WAVLM_BASE_PLUS)")
    if getattr(bundle, "_model_type", "Wav2Vec2") not in TORCHAUDIO_MODEL_TYPES:
        raise ConfigError(f"{KEY}={name!r} is a torchaudio {bundle._model_type} bundle; the encoder loads "
                          f"{', '.join(TORCHAUDIO_MODEL_TYPES)} bundles")
    return bundle


def backbone_from_checkpoint(path: str | Path | Checkpoint, preset: str | None = None,
                             key: str = KEY) -> Wav2Vec2Backbone:
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


def load_pretraining_model(path: str | Path, key: str = "checkpoint") -> Wav2Vec2ForPretraining:
    """Our pre-training checkpoint -> ``Wav2Vec2ForPretraining`` (quantizer included), eval mode."""
    if Path(str(path)).expanduser().is_dir():  # a transformers folder, HuBERT, WavLM, MERT, ...: no codebook
        raise CheckpointError(f"{key}={path} is a folder; this needs one of our pre-training checkpoints (.ckpt), "
                              "the only encoders here with a quantizer (codebooks)")
    checkpoint = read_checkpoint(path, key)
    if checkpoint.kind != "pretrain":
        raise CheckpointError(f"{key}={checkpoint.path} is {checkpoint.description}; this needs a pre-training "
                              "checkpoint (the quantizer is only there)")
    return _pretraining_model(checkpoint).eval()


def _pretraining_model(checkpoint: Checkpoint) -> Wav2Vec2ForPretraining:
    model = Wav2Vec2ForPretraining(checkpoint.config())
    model.load_state_dict(checkpoint.weights("model."))
    return model


def num_encoder_layers(path: str | Path, key: str = "--ckpt") -> int:
    """Transformer layers L of the encoder in one of our checkpoints (pre-training or fine-tuning)."""
    return int(read_checkpoint(path, key).config().num_layers)


def continued_pretraining_model(spec: EncoderSpec, overrides: dict | None = None) -> Wav2Vec2ForPretraining:
    """A ``Wav2Vec2ForPretraining`` to continue pre-training from ``spec`` (weights only).

    Our pre-training checkpoints and transformers pre-training models bring their quantizer
    and projections; any other source (an exported encoder, a torchaudio bundle, a fairseq
    encoder, a fine-tuned checkpoint) gets them freshly initialised, with a warning.
    ``overrides`` changes objective settings (masking, negatives, loss weights) only.
    """
    key = "model.init_args.init_from.path"
    model = None
    if spec.source == "checkpoint":
        checkpoint = read_checkpoint(spec.path, key)  # read once
        if checkpoint.kind == "pretrain":
            model = _pretraining_model(checkpoint)
        else:
            backbone = backbone_from_checkpoint(checkpoint, spec.preset, key)
    elif spec.source == "huggingface" and huggingface_has_quantizer(spec.path):
        hf_model = huggingface_model(spec.path, "Wav2Vec2ForPreTraining")
        convention = huggingface_input_convention(spec.path, huggingface_config_dict(spec.path))
        model = interop.from_huggingface_pretraining(hf_model, *convention).train()
    if model is None:
        if spec.source != "checkpoint":
            backbone = load_encoder(spec, key)
        log.warning("%s %s has no quantizer: continuing pre-training with a freshly initialised "
                    "quantizer, project_q, final_proj and mask embedding", spec.source, spec.path)
        model = Wav2Vec2ForPretraining(backbone.config, backbone=backbone)
    if overrides:
        fixed = sorted(set(overrides) - OBJECTIVE_FIELDS)
        if fixed:
            raise ConfigError(f"model.init_args.model_overrides {fixed} change the architecture of {spec.path}; "
                              f"when continuing pre-training only {sorted(OBJECTIVE_FIELDS)} may change")
        config = model.config.with_overrides(**overrides)
        model.config = model.backbone.config = config
        model.backbone.layerdrop = config.layerdrop
    return model
