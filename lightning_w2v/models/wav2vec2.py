"""wav2vec 2.0 pre-training model: backbone + mask embedding + quantizer + contrastive head.

Read top to bottom: the forward pass follows fairseq's ``Wav2Vec2Model.forward`` step by
step. Everything is dense over (B, T) with boolean masks, so a step needs no host sync
(no ``x[mask]`` with a data-dependent size).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import losses
from .backbone import Wav2Vec2Backbone, padding_mask_from_lengths
from .config import PretrainingObjective, Wav2Vec2Config, preset_config, preset_objective, split_overrides
from .masking import compute_span_mask, sample_negative_indices
from .quantizer import GumbelVectorQuantizer


@dataclass
class Wav2Vec2PretrainingOutput:
    loss: Tensor  # () contrastive + weighted diversity + weighted penalty, summed over masked frames
    contrastive_loss: Tensor  # () InfoNCE in nats, summed over masked frames
    diversity_loss: Tensor  # () (G*V - prob_perplexity) / (G*V), per frame (unweighted)
    feature_penalty: Tensor  # () mean squared CNN output (unweighted)
    logits: Tensor  # (B, T, 1 + K) column 0 = positive; only masked frames are meaningful
    targets: Tensor  # (B, T) long: 0 (the positive) at masked frames, -100 elsewhere
    prob_perplexity: Tensor  # () soft codebook perplexity over masked frames
    code_perplexity: Tensor  # () hard codebook perplexity over masked frames
    num_masked: Tensor  # () long: masked frames in this batch
    contrastive_accuracy: Tensor  # () share of masked frames whose positive ranks first
    mask: Tensor  # (B, T) bool
    codes: Tensor  # (B, T, G) code index per frame and group
    padding_mask: Tensor | None  # (B, T) True at padding


class Wav2Vec2ForPretraining(nn.Module):
    """The backbone and pre-training's own parts, trained with ``objective``.

    ``backbone``: an existing backbone (or torchaudio model) whose CNN and Transformer to take
    over (continued pre-training); by default a freshly initialised one. ``layerdrop``: this
    run's layerdrop (default: the config's).
    """

    def __init__(self, config: Wav2Vec2Config | None = None, objective: PretrainingObjective | None = None,
                 backbone: nn.Module | None = None, layerdrop: float | None = None) -> None:
        super().__init__()
        self.config = config = config or Wav2Vec2Config()
        self.objective = objective = objective or PretrainingObjective()
        self.backbone = Wav2Vec2Backbone(config, backbone, feature_grad_mult=objective.feature_grad_mult,
                                         layerdrop=layerdrop)
        self.mask_emb = nn.Parameter(torch.empty(config.embed_dim).uniform_())  # learned [MASK] vector
        self.dropout_features = nn.Dropout(config.dropout_features)
        self.quantizer = GumbelVectorQuantizer(
            input_dim=config.conv_dim,
            num_groups=config.num_codevector_groups,
            num_vars=config.num_codevectors_per_group,
            codevector_dim=config.codevector_dim,
            temperature=objective.temperature_max,
        )
        self.project_q = nn.Linear(config.codevector_dim, config.final_dim)
        self.final_proj = nn.Linear(config.embed_dim, config.final_dim)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "Wav2Vec2ForPretraining":
        """Preset ``name`` with ``overrides`` of either config (see :func:`split_overrides`)."""
        model, objective = split_overrides(overrides)
        return cls(preset_config(name, **model), preset_objective(name, **objective))

    def compile_pieces(self) -> None:
        """``torch.compile`` the CNN, every Transformer layer and the quantizer, in place.

        Compiling pieces rather than the whole model keeps layerdrop's per-step choice of
        layers in Python, outside the graphs, so no drop pattern triggers a recompile; the
        state-dict keys stay unchanged.
        """
        self.backbone.feature_extractor.compile()
        for layer in self.backbone.transformer.layers:
            layer.compile()
        self.quantizer.compile()

    def set_temperature(self, value: float) -> None:
        self.quantizer.set_temperature(value)

    def compute_mask(self, batch: int, frames: int, frame_lengths: Tensor | None = None,
                     device: torch.device | None = None, generator: torch.Generator | None = None) -> Tensor:
        """(B, T) span mask with this model's mask_prob, mask_length and min_masks."""
        cfg = self.objective
        return compute_span_mask(batch, frames, cfg.mask_prob, cfg.mask_length, cfg.min_masks,
                                 lengths=frame_lengths, device=device, generator=generator,
                                 require_same_masks=cfg.require_same_masks)

    def sample_negatives(self, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, T, K) distractor indices for ``mask`` with this model's num_negatives."""
        return sample_negative_indices(mask, self.objective.num_negatives, generator=generator)

    @torch.no_grad()
    def quantize(self, waveforms: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Code indices (B, T, G) of every frame, no masking, no noise (eval-mode argmax)."""
        features, frame_lengths = self.backbone.extract_features(waveforms, lengths)
        normed = self.backbone.normalize_features(features)
        codes = self.quantizer.code_logits(normed).argmax(dim=-1)  # (B, T, G)
        return codes, padding_mask_from_lengths(frame_lengths, codes.shape[1])

    def forward(
        self,
        waveforms: Tensor,
        lengths: Tensor | None = None,
        mask: Tensor | None = None,
        negative_indices: Tensor | None = None,
    ) -> Wav2Vec2PretrainingOutput:
        """waveforms: (B, S) float; lengths: (B,) valid samples, or None for equal-length crops.

        ``mask`` (B, T) bool and ``negative_indices`` (B, T, K) may be given to make a step
        deterministic (e.g. to compare with another implementation); otherwise they are drawn.
        """
        cfg = self.objective
        features, frame_lengths = self.backbone.extract_features(waveforms, lengths)  # (B, T, C)
        penalty = losses.feature_penalty(features)
        normed = self.backbone.normalize_features(features)  # (B, T, C)
        unmasked = self.dropout_features(normed)  # quantizer input: what the model must predict
        x = self.backbone.project(normed)  # (B, T, E)
        batch, frames, _ = x.shape
        padding_mask = padding_mask_from_lengths(frame_lengths, frames)

        if mask is None:
            mask = self.compute_mask(batch, frames, frame_lengths, x.device)
        mask = mask.to(device=x.device, dtype=torch.bool)
        if padding_mask is not None:
            mask = mask & ~padding_mask
        # The mask embedding follows x's dtype, so bf16 autocast keeps one dtype throughout.
        x = torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)

        context = self.backbone.transform(x, padding_mask).last_hidden_state  # (B, T, E)
        quantized = self.quantizer(unmasked, frame_weights=mask)
        targets = self.project_q(quantized.quantized)  # (B, T, F)
        predicted = self.final_proj(context)  # (B, T, F)

        if negative_indices is None:
            negative_indices = self.sample_negatives(mask)
        logits = losses.contrastive_logits(predicted, targets, negative_indices.to(x.device),
                                           quantized.codes, cfg.logit_temperature)  # (B, T, 1+K)

        num_masked = mask.sum()
        contrastive = losses.infonce_loss(logits, mask)
        diversity = losses.diversity_loss(quantized.prob_perplexity, self.quantizer.num_codes)
        masked_frames = num_masked.to(contrastive.dtype)
        loss = (
            contrastive
            + cfg.diversity_loss_weight * diversity * masked_frames
            + cfg.feature_penalty_weight * penalty * masked_frames
        )
        targets_index = torch.where(mask, 0, -100).long()  # (B, T)
        return Wav2Vec2PretrainingOutput(
            loss=loss,
            contrastive_loss=contrastive,
            diversity_loss=diversity,
            feature_penalty=penalty,
            logits=logits,
            targets=targets_index,
            prob_perplexity=quantized.prob_perplexity,
            code_perplexity=quantized.code_perplexity,
            num_masked=num_masked,
            contrastive_accuracy=losses.contrastive_accuracy(logits, mask),
            mask=mask,
            codes=quantized.codes,
            padding_mask=padding_mask,
        )
