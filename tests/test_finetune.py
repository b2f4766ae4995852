"""FinetuneModule: policies (what trains, at which LR), one optimiser step, encoder loading."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lightning_w2v import FinetuneModule
from lightning_w2v.encoders import EncoderSpec, load_encoder
from lightning_w2v.encoders.sources.checkpoint import backbone_from_checkpoint
from lightning_w2v.models import Wav2Vec2ForPretraining, tiny_config
from lightning_w2v.models.backbone import Wav2Vec2Backbone, build_torchaudio_model


def _module(ckpt, policy: str, task: str = "instrument") -> FinetuneModule:
    module = FinetuneModule(EncoderSpec(source="checkpoint", path=str(ckpt)), task=task, policy=policy)
    return module


def _groups(module: FinetuneModule) -> dict[str, float]:
    optimizer = module.configure_optimizers()
    return {group["name"]: group["lr"] for group in optimizer.param_groups}


@pytest.mark.parametrize("policy,encoder_trains,cnn_trains,lrs", [
    ("FE", False, False, {"head": 1e-3}),
    ("FT1", True, True, {"head": 1e-4, "encoder": 1e-5}),
    ("FT2", True, False, {"head": 1e-4, "encoder": 1e-5}),
])
def test_policy_sets_requires_grad_and_learning_rates(tiny_pretrain_ckpt, policy, encoder_trains, cnn_trains, lrs):
    module = _module(tiny_pretrain_ckpt, policy)
    cnn = module.encoder.feature_extractor.parameters()
    transformer = module.encoder.encoder.parameters()  # projection + Transformer
    assert all(p.requires_grad == cnn_trains for p in cnn)
    assert all(p.requires_grad == encoder_trains for p in transformer)
    assert all(p.requires_grad for p in module.head.parameters())
    assert _groups(module) == pytest.approx(lrs)
    optimizer = module.configure_optimizers()
    in_groups = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_groups == {id(p) for p in module.parameters() if p.requires_grad}


def test_fe_keeps_the_encoder_in_eval_mode(tiny_pretrain_ckpt):
    module = _module(tiny_pretrain_ckpt, "FE").train()
    assert module.head.training
    assert not any(m.training for m in module.encoder.modules())


def test_fe_encoder_stays_in_eval_mode_through_fit_and_validation(tiny_pretrain_ckpt, tmp_path):
    module = FinetuneModule(EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt)), task="instrument",
                            policy="FE")
    seen = []

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((pl_module.head.training, any(m.training for m in pl_module.encoder.modules())))

    data = [{"waveforms": torch.randn(16000), "labels": torch.tensor(i % 11)} for i in range(4)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[Spy()])  # sanity check + validation each epoch
    trainer.fit(module, loader, loader)
    assert seen == [(True, False)] * 4  # head trains, encoder in eval mode, also after validations


def _snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("policy", ["FE", "FT1", "FT2"])
def test_one_optimiser_step_changes_exactly_what_the_policy_trains(tiny_pretrain_ckpt, policy):
    torch.manual_seed(0)
    module = _module(tiny_pretrain_ckpt, policy).train()
    optimizer = module.configure_optimizers()
    before = _snapshot(module)
    batch = {"waveforms": torch.randn(4, 16000), "labels": torch.tensor([0, 1, 2, 3])}
    logits = module(batch["waveforms"])
    torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
    optimizer.step()
    after = _snapshot(module)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    cnn = {n for n in before if n.startswith("encoder.feature_extractor.")}
    transformer = {n for n in before if n.startswith("encoder.encoder.transformer.layers.")}
    head = {n for n in before if n.startswith("head.")}
    assert head <= changed
    if policy == "FE":
        assert changed == head
    if policy == "FT2":
        assert not (cnn & changed), "FT2 must leave every CNN weight bit-identical"
        assert transformer & changed
    if policy == "FT1":
        assert cnn & changed and transformer & changed


def test_task_mismatch_between_model_and_data_is_an_error(tiny_pretrain_ckpt):
    with pytest.raises(ValueError, match=r"model.init_args.task"):
        FinetuneModule(EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt)), task="timbre")


def test_encoder_from_our_checkpoint_matches_the_pretraining_model(tiny_pretrain_ckpt):
    checkpoint = torch.load(tiny_pretrain_ckpt, weights_only=False)
    model = Wav2Vec2ForPretraining(tiny_config())
    model.load_state_dict({k[len("model."):]: v for k, v in checkpoint["state_dict"].items()
                           if k.startswith("model.")})
    backbone = backbone_from_checkpoint(tiny_pretrain_ckpt).eval()
    waveforms = torch.randn(2, 16000)
    with torch.no_grad():
        ours = backbone(waveforms).last_hidden_state
        reference = model.backbone.eval()(waveforms).last_hidden_state
    torch.testing.assert_close(ours, reference)


def test_checkpoint_that_does_not_fit_the_preset_says_so(tiny_pretrain_ckpt):
    with pytest.raises(ValueError, match="does not fit the preset 'base'"):
        backbone_from_checkpoint(tiny_pretrain_ckpt, preset="base")


def test_encoder_from_a_locally_saved_transformers_model(tmp_path):
    transformers = pytest.importorskip("transformers")
    from lightning_w2v.models.interop import config_to_huggingface

    hf = transformers.Wav2Vec2Model(config_to_huggingface(tiny_config())).eval()
    hf.save_pretrained(tmp_path / "hf")
    backbone = load_encoder(EncoderSpec(source="huggingface", path=str(tmp_path / "hf"))).eval()
    waveforms = torch.randn(2, 16000)
    with torch.no_grad():
        torch.testing.assert_close(backbone(waveforms).last_hidden_state, hf(waveforms).last_hidden_state,
                                   atol=1e-5, rtol=1e-5)


def test_encoder_from_a_torchaudio_model_of_the_same_architecture():
    config = tiny_config()
    torchaudio_model = build_torchaudio_model(config).eval()
    backbone = Wav2Vec2Backbone(config, torchaudio_model).eval()
    waveforms = torch.randn(2, 16000)
    with torch.no_grad():
        reference, _ = torchaudio_model(waveforms)  # torchaudio's own forward (no aux head)
        torch.testing.assert_close(backbone(waveforms).last_hidden_state, reference)


def test_weighted_layer_head_uses_every_hidden_state(tiny_pretrain_ckpt):
    module = FinetuneModule(EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt)),
                            task="pitch", policy="FE", layer="weighted")
    weights = module.head.layer_weights()
    assert weights.shape == (module.encoder.num_layers + 1,)
    assert weights.sum().item() == pytest.approx(1.0)
    logits = module(torch.randn(2, 16000))
    logits.sum().backward()
    assert (module.head.layer_logits.grad.abs() > 0).all()


def test_pitch_metrics_and_bf16_fit_step(tiny_pretrain_ckpt, tmp_path):
    import pytorch_lightning as pl

    module = FinetuneModule(EncoderSpec(source="checkpoint", path=str(tiny_pretrain_ckpt)), task="pitch",
                            policy="FT2", results_dir=str(tmp_path))
    data = [{"waveforms": torch.randn(16000), "labels": torch.tensor(i)} for i in range(8)]
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", precision="bf16-mixed", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader, loader)
    trainer.test(module, loader)
    metrics = trainer.callback_metrics
    for key in ("test/acc", "test/acc_top5", "test/f1_macro", "test/chroma_acc", "test/loss"):
        assert key in metrics and torch.isfinite(metrics[key])
    assert (tmp_path / "test_metrics.json").exists() and (tmp_path / "confusion_matrix.png").exists()


def test_fe_caches_pooled_features_and_gives_the_same_logits(tiny_pretrain_ckpt):
    module = _module(tiny_pretrain_ckpt, "FE").train()
    batch = {"waveforms": torch.randn(3, 16000), "labels": torch.tensor([0, 1, 2]), "index": torch.tensor([5, 6, 7])}
    with torch.no_grad():
        direct = module.head.classify(module.pooled_features(batch["waveforms"]))
        first = module.head.classify(module._cached_features(batch, "train"))
        calls = []
        handle = module.encoder.register_forward_hook(lambda *args: calls.append(1))
        second = module.head.classify(module._cached_features(batch, "train"))
        handle.remove()
    torch.testing.assert_close(first, direct)
    torch.testing.assert_close(second, direct)
    assert not calls, "the second epoch must not run the frozen encoder again"


def test_macro_f1_is_not_computed_from_top5_counts(tiny_pretrain_ckpt):
    """A one-class first batch (sorted splits) must not merge F1 with top-5 accuracy's state."""
    from torchmetrics.classification import MulticlassF1Score

    module = _module(tiny_pretrain_ckpt, "FE")
    torch.manual_seed(0)
    first_logits, first_labels = torch.zeros(8, 11), torch.zeros(8, dtype=torch.long)
    second_logits, second_labels = torch.randn(16, 11), torch.randint(0, 11, (16,))
    reference = MulticlassF1Score(num_classes=11, average="macro")
    for logits, labels in ((first_logits, first_labels), (second_logits, second_labels)):
        module.test_metrics.update(logits, labels)
        reference.update(logits, labels)
    assert module.test_metrics.compute()["test/f1_macro"].item() == pytest.approx(reference.compute().item())


def test_a_training_batch_of_one_clip_is_standardised_with_the_running_statistics():
    from lightning_w2v.tasks.heads import PooledClassifier

    head = PooledClassifier((8,), 3, standardize=True).train()
    head.norm.running_mean.fill_(1.0)
    head.norm.running_var.fill_(4.0)
    pooled = torch.full((1, 1, 8), 3.0)
    expected = head.linear(torch.full((1, 8), (3.0 - 1.0) / (4.0 + head.norm.eps) ** 0.5))
    torch.testing.assert_close(head.classify(pooled), expected)
    assert head.classify(torch.randn(4, 1, 8)).shape == (4, 3)  # larger batches: batch statistics as before
