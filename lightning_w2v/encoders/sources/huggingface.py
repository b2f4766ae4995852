"""``encoder.source: huggingface``: transformers model folders (or hub ids) of every family the
backbone reproduces, loaded strictly.

wav2vec 2.0, HuBERT, WavLM and data2vec-audio load through their transformers class; MERT-v1
style folders (a HuBERT backbone behind custom code) through ``HubertModel`` without running
that code. The input convention (sample rate, per-clip normalisation) is read from the
folder's ``preprocessor_config.json``. The conversion itself is
:func:`lightning_w2v.models.interop.backbone_from_huggingface`.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ...errors import CheckpointError
from ...models import interop
from ...models.backbone import Wav2Vec2Backbone
from ...models.wav2vec2 import Wav2Vec2ForPretraining
from ...vocabulary import SAMPLE_RATE
from ..source import EncoderSource

log = logging.getLogger(__name__)
KEY = "model.init_args.encoder.path"  # the setting that errors about a folder name

# transformers model type -> the class holding its encoder. Each one's every hidden state is
# reproduced by the backbone (tests/test_encoder_families.py); other types are refused by name.
HF_MODEL_CLASSES = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel", "wavlm": "WavLMModel",
                    "data2vec-audio": "Data2VecAudioModel"}
# MERT-v1 and music2vec ship a HuBERT backbone behind custom code; their weights map onto HubertModel.
MERT_MODEL_TYPES = ("mert_model", "music2vec")
# Weights of pre-training or CTC heads that an encoder-only load leaves out on purpose
HEAD_PREFIXES = ("quantizer.", "project_q.", "project_hid.", "lm_head.", "final_proj.", "label_embeddings_concat")


def huggingface_backbone(path: str | Path) -> Wav2Vec2Backbone:
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
    computation away from HuBERT (the CQT branch, DeepNorm residuals) are refused by name, and
    so is any weight that does not map (``feat_proj_layer_norm=False`` is refused for every
    family, in :func:`huggingface_backbone`).
    """
    import tempfile

    import transformers  # optional: only transformers sources need it

    unsupported = {"feature_extractor_cqt": False, "deepnorm": False}
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


class HuggingFaceSource(EncoderSource):
    name = "huggingface"
    summary = ("a transformers model folder or hub id: wav2vec 2.0, HuBERT, WavLM, data2vec-audio, or a MERT-v1 "
               "folder")

    def build(self, key: str) -> Wav2Vec2Backbone:
        return huggingface_backbone(self.path)

    def num_hidden_states(self, key: str) -> int:
        return int(huggingface_config_dict(self.path)["num_hidden_layers"]) + 1

    def has_quantizer(self, key: str) -> bool:
        return huggingface_has_quantizer(self.path)

    def pretraining_model(self, key: str) -> Wav2Vec2ForPretraining | None:
        if not huggingface_has_quantizer(self.path):
            return None
        hf_model = huggingface_model(self.path, "Wav2Vec2ForPreTraining")
        convention = huggingface_input_convention(self.path, huggingface_config_dict(self.path))
        return interop.from_huggingface_pretraining(hf_model, *convention).train()
