"""The HEAR 2021 API: the checks hear-validator performs, on our demo checkpoint."""
from __future__ import annotations

import pytest
import torch

from lightning_w2v import hear
from lightning_w2v.models.windows import window_frames, window_owners

SR = 16000


@pytest.fixture(scope="module")
def model(tiny_pretrain_ckpt):
    return hear.load_model(str(tiny_pretrain_ckpt))


def test_required_attributes(model):
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == 16000
    assert isinstance(model.scene_embedding_size, int) and model.scene_embedding_size == 64
    assert isinstance(model.timestamp_embedding_size, int) and model.timestamp_embedding_size == 64
    assert callable(hear.get_timestamp_embeddings) and callable(hear.get_scene_embeddings)


def test_shapes_dtypes_and_timestamps(model):
    audio = torch.rand(3, 2 * SR) * 2 - 1
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    frames = (2 * SR - 400) // 320 + 1  # 99
    assert emb.shape == (3, frames, model.timestamp_embedding_size) and emb.dtype == torch.float32
    assert ts.shape == (3, frames) and ts.dtype == torch.float32
    assert torch.isfinite(emb).all()
    assert ts[0, 0].item() == pytest.approx(12.5)  # centre of the first 25 ms window
    steps = torch.diff(ts, dim=1)
    assert torch.allclose(steps, torch.full_like(steps, 20.0))  # constant 20 ms hop
    assert torch.equal(ts[0], ts[2])
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, model.scene_embedding_size) and scene.dtype == torch.float32
    torch.testing.assert_close(scene, emb.mean(dim=1))


def test_embeddings_are_the_last_transformer_layer(model):
    audio = torch.randn(2, SR) * 0.1
    emb, _ = hear.get_timestamp_embeddings(audio, model)
    with torch.no_grad():
        ref = model.backbone(audio).last_hidden_state
    torch.testing.assert_close(emb, ref)


def test_batch_independence(model):
    audio = torch.randn(4, SR) * 0.3
    batched, _ = hear.get_timestamp_embeddings(audio, model)
    alone, _ = hear.get_timestamp_embeddings(audio[1:2], model)
    torch.testing.assert_close(batched[1:2], alone, atol=1e-5, rtol=0)
    other = audio.clone()
    other[[0, 2, 3]] = torch.randn(3, SR)  # change every other example
    changed, _ = hear.get_timestamp_embeddings(other, model)
    torch.testing.assert_close(changed[1], batched[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("samples", [0, 1, 100, 399, 400, 719, 720, 1000])
def test_short_inputs(model, samples):
    emb, ts = hear.get_timestamp_embeddings(torch.randn(2, samples), model)
    expected = max((max(samples, 400) - 400) // 320 + 1, 1)
    assert emb.shape == (2, expected, 64) and ts.shape == (2, expected)
    assert torch.isfinite(emb).all() and ts[0, 0].item() == pytest.approx(12.5)
    assert hear.get_scene_embeddings(torch.randn(2, samples), model).shape == (2, 64)


def test_silence(model):
    emb, _ = hear.get_timestamp_embeddings(torch.zeros(2, SR), model)
    assert torch.isfinite(emb).all()
    assert torch.isfinite(hear.get_scene_embeddings(torch.zeros(1, 3 * SR), model)).all()


def test_no_drift_over_a_long_input(model):
    seconds = 60
    audio = torch.randn(1, seconds * SR) * 0.1
    emb, ts = hear.get_timestamp_embeddings(audio, model)  # 4 chunked windows
    assert abs(emb.shape[1] - seconds * 1000 / 20) <= 1
    assert emb.shape[1] == (seconds * SR - 400) // 320 + 1
    expected = (torch.arange(emb.shape[1], dtype=torch.float64) * 320 + 200) / 16
    torch.testing.assert_close(ts[0].double(), expected, atol=1e-3, rtol=0)
    assert ts[0, -1].item() < seconds * 1000 and ts[0, -1].item() > seconds * 1000 - 40
    assert torch.isfinite(emb).all()


def test_chunking_stitches_windows_without_shifting_frames(tiny_pretrain_ckpt):
    """Every chunked frame equals that frame of the window it was taken from."""
    model = hear.load_model(str(tiny_pretrain_ckpt), chunk_seconds=2.0, context_seconds=0.5)
    whole = hear.load_model(str(tiny_pretrain_ckpt), chunk_seconds=None)
    audio = torch.randn(2, 7 * SR + 123) * 0.1
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    emb_whole, ts_whole = hear.get_timestamp_embeddings(audio, whole)
    assert emb.shape == emb_whole.shape and torch.equal(ts, ts_whole)
    window, context = window_frames(model.backbone, 2.0, 0.5)
    starts, _ = window_owners(emb.shape[1], window, context)
    assert len(starts) > 3 and starts[-1] + window == emb.shape[1]
    samples = (window - 1) * 320 + 400
    for start in (starts[1], starts[-1]):
        with torch.no_grad():
            direct = model.encode(audio[:, start * 320 : start * 320 + samples])
        # the frames with the most context in this window are its middle ones
        mid = start + window // 2
        torch.testing.assert_close(emb[:, mid], direct[:, window // 2], atol=1e-5, rtol=0)
    # the first frames come from the first window, the last ones from the last (which stops
    # at the last whole frame: the 123-odd trailing samples belong to no frame)
    with torch.no_grad():
        first = model.encode(audio[:, :samples])
        last = model.encode(audio[:, starts[-1] * 320 : starts[-1] * 320 + samples])
    torch.testing.assert_close(emb[:, :5], first[:, :5], atol=1e-5, rtol=0)
    torch.testing.assert_close(emb[:, -5:], last[:, -5:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("layer,size", [(0, 64), (1, 64), ("weighted-mean", 64), ("concat", 3 * 64)])
def test_layer_choices(tiny_pretrain_ckpt, layer, size):
    model = hear.load_model(str(tiny_pretrain_ckpt), layer=layer)
    audio = torch.randn(1, SR)
    emb, _ = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape[-1] == size == model.timestamp_embedding_size
    with torch.no_grad():
        states = model.backbone(audio, output_hidden_states=True).hidden_states
    if layer == "weighted-mean":
        torch.testing.assert_close(emb, (states[1] + states[2]) / 2)
    elif isinstance(layer, int):
        torch.testing.assert_close(emb, states[layer])


def test_random_model_without_a_file():
    a, b = hear.load_model(), hear.load_model()
    audio = torch.randn(1, SR)
    torch.testing.assert_close(hear.get_scene_embeddings(audio, a), hear.get_scene_embeddings(audio, b))
    with pytest.raises(ValueError):
        hear.load_model(layer=7)


def test_a_transformers_directory_loads_too(tiny_pretrain_ckpt, model, tmp_path):
    """An exported checkpoint gives the same embeddings as the checkpoint itself."""
    pytest.importorskip("transformers")
    from lightning_w2v.checkpoints.export import export_to_transformers

    out = export_to_transformers(str(tiny_pretrain_ckpt), tmp_path / "hf")
    from_dir = hear.load_model(str(out))
    audio = torch.randn(2, SR)
    torch.testing.assert_close(hear.get_timestamp_embeddings(audio, from_dir)[0],
                               hear.get_timestamp_embeddings(audio, model)[0], atol=1e-5, rtol=0)
