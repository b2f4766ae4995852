"""Encoders of other transformers families: loaded exactly (every hidden state), or refused by name.

Small random models are built locally from transformers configs (no download), saved with
``save_pretrained`` and loaded through ``EncoderSpec(source="huggingface")``.
"""
from __future__ import annotations

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from lightning_w2v.checkpoints.encoders import EncoderSpec, load_encoder
from lightning_w2v.errors import CheckpointError, ConfigError

SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
         "conv_dim": (32,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2),
         "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}
LENGTHS = (16001, 11007)  # an odd length, and a second row padded to it


def saved(model: torch.nn.Module, path) -> str:
    model.save_pretrained(path)
    return str(path)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    lengths = torch.tensor(LENGTHS)
    waveforms = torch.randn(len(LENGTHS), max(LENGTHS))
    waveforms[1, LENGTHS[1]:] = 0.0
    return waveforms, lengths


@pytest.mark.parametrize("stable_layer_norm", [False, True], ids=["post-LN, group norm", "pre-LN, layer norm"])
@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_hubert_matches_transformers_at_every_hidden_state(tmp_path, stable_layer_norm, padded):
    torch.manual_seed(0)
    config = transformers.HubertConfig(**SMALL, do_stable_layer_norm=stable_layer_norm,
                                       feat_extract_norm="layer" if stable_layer_norm else "group")
    reference = transformers.HubertModel(config).eval()
    ours = load_encoder(EncoderSpec(source="huggingface", path=saved(reference, tmp_path / "hubert"))).eval()
    waveforms, lengths = _batch()
    if not padded:
        waveforms, lengths = waveforms[:1], lengths[:1]
    attention_mask = (torch.arange(waveforms.shape[1])[None, :] < lengths[:, None]).long()
    with torch.no_grad():
        output = reference(waveforms, attention_mask=attention_mask, output_hidden_states=True)
        mine = ours(waveforms, lengths, output_hidden_states=True)
    # The last hidden state of a pre-LN model is read after its final LayerNorm, i.e. it is
    # last_hidden_state (as transformers 4 records it; transformers 5 records the layer's output
    # before that LayerNorm).
    theirs = (*output.hidden_states[:-1], output.last_hidden_state)
    assert len(mine.hidden_states) == len(theirs) == config.num_hidden_layers + 1
    frames = reference._get_feat_extract_output_lengths(lengths)
    for index, (a, b) in enumerate(zip(mine.hidden_states, theirs)):
        for row, valid in enumerate(frames.tolist()):  # padded frames carry no meaning in either
            torch.testing.assert_close(a[row, :valid], b[row, :valid], atol=1e-4, rtol=1e-4,
                                       msg=lambda m, i=index: f"hidden state {i}: {m}")


@pytest.mark.parametrize("family", ["WavLM", "Data2VecAudio"])
def test_families_not_reproduced_exactly_are_refused_by_name(tmp_path, family):
    """WavLM (relative position bias) and data2vec-audio used to load silently into wrong or NaN
    features; they are refused until the backbone reproduces them."""
    torch.manual_seed(0)
    config = getattr(transformers, f"{family}Config")(**SMALL)
    path = saved(getattr(transformers, f"{family}Model")(config), tmp_path / family)
    with pytest.raises(CheckpointError, match=config.model_type):
        load_encoder(EncoderSpec(source="huggingface", path=path))


def test_a_checkpoint_with_a_missing_weight_is_refused_naming_it(tmp_path):
    torch.manual_seed(0)
    path = saved(transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**SMALL)), tmp_path / "w2v2")
    weights_file = tmp_path / "w2v2" / "model.safetensors"
    weights = load_file(weights_file)
    dropped = "encoder.layers.1.attention.k_proj.weight"
    del weights[dropped]
    save_file(weights, weights_file, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=f"missing {dropped}"):
        load_encoder(EncoderSpec(source="huggingface", path=path))


def test_a_wavlm_torchaudio_bundle_is_refused_before_any_download():
    with pytest.raises(ConfigError, match="WavLM"):
        load_encoder(EncoderSpec(source="torchaudio", path="WAVLM_BASE"))
