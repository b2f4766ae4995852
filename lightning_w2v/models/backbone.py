"""The wav2vec 2.0 encoder (CNN + Transformer) built from torchaudio's components.

``Wav2Vec2Backbone`` holds torchaudio's ``feature_extractor`` and ``encoder`` unchanged, so
any torchaudio / transformers / fairseq checkpoint loads into it through torchaudio's
importers. It re-implements only the thin forward glue, to add what pre-training and
probing need: a hook to mask the projected features, layerdrop without a host sync, and
every layer's output. The same glue runs HuBERT and MERT (wav2vec 2.0's encoder), WavLM
(torchaudio's ``wavlm_model``, its position bias carried from layer to layer) and
data2vec-audio (its stacked positional convs in place of wav2vec 2.0's one).
"""
from __future__ import annotations

import math

import torch
import torchaudio
from torch import Tensor, nn
from torchaudio.models.wav2vec2 import components

from ..vocabulary import SAMPLE_RATE
from .config import Wav2Vec2Config
from .encoder import Encoder, EncoderOutput, padding_mask_from_lengths
from .families import StackedPositionalEmbedding, to_model_input

__all__ = ["EncoderOutput", "GradMultiply", "Wav2Vec2Backbone", "build_torchaudio_model", "padding_mask_from_lengths"]


class GradMultiply(torch.autograd.Function):
    """Identity forward; scales the gradient (fairseq's feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale, None


def torchaudio_kwargs(config: Wav2Vec2Config) -> dict:
    """Arguments of ``torchaudio.models.wav2vec2_model`` for this config."""
    return dict(
        extractor_mode=config.extractor_mode,
        extractor_conv_layer_config=[tuple(layer) for layer in config.conv_layers],
        extractor_conv_bias=config.conv_bias,
        encoder_embed_dim=config.embed_dim,
        encoder_projection_dropout=config.dropout_input,
        encoder_pos_conv_kernel=config.pos_conv_kernel,
        encoder_pos_conv_groups=config.pos_conv_groups,
        encoder_num_layers=config.num_layers,
        encoder_num_heads=config.num_heads,
        encoder_attention_dropout=config.attention_dropout,
        encoder_ff_interm_features=config.ffn_dim,
        encoder_ff_interm_dropout=config.activation_dropout,
        encoder_dropout=config.dropout,
        encoder_layer_norm_first=config.layer_norm_first,
        encoder_layer_drop=config.layerdrop,
    )


def build_torchaudio_model(config: Wav2Vec2Config) -> torchaudio.models.Wav2Vec2Model:
    """torchaudio's ``wav2vec2_model`` (``wavlm_model`` for WavLM) with this config, no CTC head."""
    if config.family == "wavlm":
        return torchaudio.models.wavlm_model(**torchaudio_kwargs(config), encoder_num_buckets=config.num_buckets,
                                             encoder_max_distance=config.max_distance, aux_num_out=None)
    model = torchaudio.models.wav2vec2_model(**torchaudio_kwargs(config), aux_num_out=None)
    if config.family == "data2vec_audio":
        model.encoder.transformer.pos_conv_embed = StackedPositionalEmbedding(
            config.embed_dim, config.pos_conv_kernel, config.pos_conv_groups, config.pos_conv_layers)
    return model


@torch.no_grad()
def init_like_fairseq(model: nn.Module) -> None:
    """fairseq's initialisation of a fresh wav2vec 2.0 (torchaudio leaves PyTorch defaults).

    Kaiming-normal convolutions keep the CNN output at unit scale: with PyTorch's default
    init it shrinks ~10x per layer, the LayerNorm's eps then swamps it and pre-training
    never leaves chance level. The positional conv gets N(0, sqrt(4 / (k * E))) and the
    Transformer BERT's N(0, 0.02) linears.
    """
    for module in model.modules():
        if isinstance(module, components.ConvLayerBlock):
            nn.init.kaiming_normal_(module.conv.weight)
        elif isinstance(module, components.ConvolutionalPositionalEmbedding):
            conv = module.conv
            std = math.sqrt(4.0 / (module.kernel_size * module.embed_dim))
            conv.weight = torch.randn_like(conv.weight) * std  # through weight_norm's right_inverse
            nn.init.zeros_(conv.bias)
        elif isinstance(module, components.Transformer):
            module.layers.apply(components._init_transformer_params)


class Wav2Vec2Backbone(Encoder):
    """The wav2vec 2.0 family's encoder as an :class:`~lightning_w2v.models.encoder.Encoder`.

    Hidden state 0 is the Transformer's input (after the projection and the positional
    convolution), state i is layer i's output; the frontend is the CNN's output.

    ``feature_grad_mult`` scales the gradient that reaches the CNN (pre-training's fairseq setting:
    0.1; fine-tuning: the full gradient, 1.0) and ``layerdrop`` is this run's layerdrop (default:
    the config's): both are choices of the run that builds the backbone, not of the model.
    """

    parts = {"cnn": "feature_extractor"}  # FT2 freezes the CNN feature encoder
    needs_windows = True
    has_frontend = True

    def __init__(self, config: Wav2Vec2Config, torchaudio_model: nn.Module | None = None, *,
                 feature_grad_mult: float = 1.0, layerdrop: float | None = None) -> None:
        super().__init__()
        self.config = config
        source = torchaudio_model
        if source is None:
            source = build_torchaudio_model(config)
            init_like_fairseq(source)
        self.feature_extractor = source.feature_extractor  # CNN: (B, S) -> (B, T, C)
        self.encoder = source.encoder  # .feature_projection and .transformer
        self.feature_grad_mult = float(feature_grad_mult)
        self.layerdrop = config.layerdrop if layerdrop is None else float(layerdrop)
        # Layerdrop decisions come from a CPU generator: no device sync, and reproducible.
        self._layerdrop_rng = torch.Generator().manual_seed(0)
        self.sample_rate = config.sample_rate
        self.hop_samples = config.downsampling  # 320: 20 ms at 16 kHz
        self.first_frame_centre = config.receptive_field / 2  # frame 0 covers samples [0, 400)
        self.min_samples = config.receptive_field
        self.hidden_sizes = (config.embed_dim,) * (config.num_layers + 1)

    def num_frames(self, num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
        return self.config.num_frames(num_samples, sample_rate)

    def architecture(self) -> dict:
        return self.config.to_dict()

    @property
    def transformer(self) -> nn.Module:
        return self.encoder.transformer

    @property
    def num_layers(self) -> int:
        return len(self.encoder.transformer.layers)

    @property
    def cnn_trains(self) -> bool:
        """Whether any CNN weight takes a gradient (False under a frozen-CNN fine-tuning policy)."""
        return any(p.requires_grad for p in self.feature_extractor.parameters())

    def prepare_input(self, waveforms: Tensor, lengths: Tensor | None = None,
                      sample_rate: int = SAMPLE_RATE) -> tuple[Tensor, Tensor | None]:
        """Audio (B, S) at ``sample_rate`` (16 kHz, as every data module gives it) -> this
        checkpoint's own input convention (config.sample_rate, config.normalize_waveform);
        unchanged for our models."""
        return to_model_input(waveforms, lengths, self.config.sample_rate, self.config.normalize_waveform,
                              input_rate=sample_rate)

    def extract_features(self, waveforms: Tensor, lengths: Tensor | None = None,
                         sample_rate: int = SAMPLE_RATE) -> tuple[Tensor, Tensor | None]:
        """(B, S) audio at ``sample_rate`` -> (B, T, C) CNN features and (B,) frame lengths (None if unpadded)."""
        waveforms, lengths = self.prepare_input(waveforms, lengths, sample_rate)
        mult = self.feature_grad_mult
        if (self.training and mult == 0.0) or not self.cnn_trains:
            with torch.no_grad():  # no gradient can reach the CNN: do not record its graph
                features, frame_lengths = self.feature_extractor(waveforms, lengths)
        else:
            features, frame_lengths = self.feature_extractor(waveforms, lengths)
            if self.training and mult != 1.0 and features.requires_grad:
                features = GradMultiply.apply(features, mult)
        return features, frame_lengths

    def normalize_features(self, features: Tensor) -> Tensor:
        """LayerNorm of the CNN output: the input of both the projection and the quantizer."""
        return self.encoder.feature_projection.layer_norm(features)

    def project(self, normed_features: Tensor) -> Tensor:
        """(B, T, C) -> (B, T, E): linear projection and dropout_input."""
        projection = self.encoder.feature_projection
        return projection.dropout(projection.projection(normed_features))

    def _layers_to_run(self, layerdrop: bool) -> list[bool]:
        count = self.num_layers
        if not (self.training and layerdrop and self.layerdrop > 0.0):
            return [True] * count
        draws = torch.rand(count, generator=self._layerdrop_rng)  # CPU: no device sync
        return (draws > self.layerdrop).tolist()

    def transform(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        output_hidden_states: bool = False,
        layerdrop: bool = True,
    ) -> EncoderOutput:
        """Run the Transformer on projected features x (B, T, E).

        Reading hidden states (``output_hidden_states``) disables layerdrop, so no layer goes
        missing from a probe. hidden_states[0] is the Transformer's input after the
        positional convolution (and, for post-LN models, its LayerNorm); hidden_states[i]
        is layer i's output.
        """
        transformer = self.encoder.transformer
        wavlm = self.config.family == "wavlm"
        attention_mask = None
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
            batch, frames = padding_mask.shape
            if not wavlm:  # WavLM's attention takes the (B, T) mask as key_padding_mask instead
                attention_mask = -10000.0 * padding_mask[:, None, None, :].to(x.dtype)  # (B, 1, 1, T)
                attention_mask = attention_mask.expand(batch, 1, frames, frames)
        x = transformer._preprocess(x)
        position_bias = self._position_bias(x) if wavlm else None
        hidden_states = [x] if output_hidden_states else None
        run = self._layers_to_run(layerdrop and not output_hidden_states)
        for layer, keep in zip(transformer.layers, run):
            if keep:
                x, _ = layer(x, attention_mask, position_bias=position_bias, key_padding_mask=padding_mask)
            if hidden_states is not None:
                hidden_states.append(x)
        if not transformer.layer_norm_first:  # pre-LN models normalise at the end
            x = transformer.layer_norm(x)
            if hidden_states is not None:
                hidden_states[-1] = x
        return EncoderOutput(last_hidden_state=x, hidden_states=hidden_states, padding_mask=padding_mask)

    def _position_bias(self, x: Tensor) -> Tensor:
        """WavLM's relative position bias (B, H, T, T), from the first layer's bucket embedding.

        Computed once before the layer loop and handed to every layer (each gates it with its
        own query), as WavLM does; computing it here rather than inside layer 1 keeps it when
        layerdrop skips that layer.
        """
        batch, frames, _ = x.shape
        bias = self.encoder.transformer.layers[0].attention.compute_bias(frames, frames)  # (H, T, T)
        return bias.unsqueeze(0).repeat(batch, 1, 1, 1)

    def forward(
        self,
        waveforms: Tensor,
        lengths: Tensor | None = None,
        output_hidden_states: bool = False,
        sample_rate: int = SAMPLE_RATE,
    ) -> EncoderOutput:
        """Audio (B, S) at ``sample_rate`` (the data's 16 kHz) -> contextual representations (B, T, E),
        no masking."""
        features, frame_lengths = self.extract_features(waveforms, lengths, sample_rate)
        x = self.project(self.normalize_features(features))
        padding_mask = padding_mask_from_lengths(frame_lengths, x.shape[1])
        out = self.transform(x, padding_mask, output_hidden_states=output_hidden_states)
        if output_hidden_states:
            out.frontend = features
        return out
