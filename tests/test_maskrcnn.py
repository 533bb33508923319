"""Mask R-CNN (train/maskrcnn): a one-epoch run that `evaluate detector` scores, COCO mask AP of
perfect predictions, fine-tuning, and the errors a user can run into."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from evaluate import metrics as m
from synth.annotations import Annotations, ClassInfo, Prediction
from synth.errors import ConfigError, DataError, ModelError
from train.maskrcnn.config import MaskRCNNConfig
from train.maskrcnn.data import augment, target_of
from train.maskrcnn.model import WEIGHTS, MaskRCNNModel
from train.maskrcnn.training import finetune, pretrain
from train.tiling import canonical_sources, split_tiles

FAST = {"tile": 64, "epochs": 1, "batch_size": 4, "fpn_channels": 32}


def _render(root: Path, scene: dict) -> Path:
    from synth.config import parse_config
    from synth.render import render_dataset

    render_dataset(parse_config(scene), root, renderer="raster", progress=False)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """64² raster plates: defects in every train image, stains on some, good test images too."""
    from tests.conftest import TINY_SCENE

    splits = {"train": {"count": 4, "good_fraction": 0.0}, "val": {"count": 1, "good_fraction": 0.0}}
    scene = {**TINY_SCENE, "splits": {**splits, "test": {"count": 3, "good_fraction": 0.34}}}
    return _render(tmp_path_factory.mktemp("plates"), scene)


@pytest.fixture(scope="module")
def weights(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weights") / "maskrcnn.pt"
    pretrain(dataset, out, MaskRCNNConfig(**FAST))
    return out


def test_one_epoch_writes_weights_that_evaluate_detector_scores(weights, dataset, tmp_path) -> None:
    from evaluate.detector import detector

    data = WEIGHTS.read(weights)
    assert data["finished"] is True
    assert [c["name"] for c in data["classes"]] == ["scratch", "pit", "water_stain"]
    assert data["config"]["tile"] == 64 and len(data["history"]) == 1
    assert data["trained_on"][0]["start"] == "new:mobilenet_v2:imagenet"
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        detector, ["--weights", str(weights), "--data", str(dataset), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "maskrcnn" and metrics["good_images"] == 1
    for key in ("map50", "map50_95", "ap_small", "mask_map50", "mask_map50_95", "mask_ap_small"):
        assert key in metrics
    assert 0.0 <= metrics["map50"] <= 1.0 and 0.0 <= metrics["mask_map50"] <= 1.0
    assert set(metrics["per_class"]) <= {"scratch", "pit", "water_stain"}
    assert (out / "report.html").is_file()


def test_evaluate_detector_scores_the_val_split_on_request(weights, dataset, tmp_path) -> None:
    """Recipes are chosen on val; the fixture's one val image has a defect, its test split a good one."""
    from evaluate.detector import detector

    out = tmp_path / "val"
    args = ["--weights", str(weights), "--data", str(dataset), "--out", str(out), "--split", "val"]
    result = CliRunner().invoke(detector, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["good_images"] == 0
    bad = CliRunner().invoke(detector, [*args[:-1], "train"])
    assert bad.exit_code == 2 and "'train' is not one of 'test', 'val'" in bad.output


def test_the_imagenet_backbone_is_loaded_and_the_early_stages_stay_frozen() -> None:
    from train import backbones

    model = MaskRCNNModel.new(MaskRCNNConfig(**FAST, trainable_stages=3), [ClassInfo(1, "crack")])
    reference = backbones.mobilenet_v2().features.state_dict()
    body = model.body.state_dict()
    assert len(body) > 200 and all(torch.equal(reference[k], v) for k, v in body.items() if k in reference)
    frozen = {name.split(".")[0] for name, p in model.body.named_parameters() if not p.requires_grad}
    trained = {name.split(".")[0] for name, p in model.body.named_parameters() if p.requires_grad}
    assert frozen == {"0", "1", "2", "3"} and trained == {str(i) for i in range(4, 18)}


def _two_images() -> dict[str, Annotations]:
    classes = (ClassInfo(1, "crack"), ClassInfo(2, "stain", "impurity"))
    first = np.zeros((40, 60), np.uint16)
    first[5:8, 10:50] = 1  # a thin crack (small)
    first[20:36, 30:46] = 2  # a blob with a hole
    first[26:30, 36:40] = 0
    second = np.zeros((40, 60), np.uint16)
    second[0:40, 0:2] = 1  # along the left edge
    return {
        "a": Annotations.from_instance_map(first, {1: 1, 2: 2}, classes),
        "b": Annotations.from_instance_map(second, {1: 1}, classes),
        "good": Annotations.from_instance_map(np.zeros((40, 60), np.uint16), {}, classes),
    }


def _as_prediction(annotations: Annotations, instance, shift: int = 0) -> Prediction:
    x, y, w, h = instance.bbox
    crop = (annotations.instance_map == instance.instance_id)[y : y + h, x : x + w]
    return Prediction((x + shift, y, x + w + shift, y + h), 0.9, instance.class_id, crop, (x + shift, y))


def test_coco_mask_ap_is_one_when_the_predictions_are_the_truth() -> None:
    images = _two_images()
    truths = {k: a.instances for k, a in images.items()}
    preds = {k: [_as_prediction(a, i) for i in a.instances] for k, a in images.items()}
    names = {1: "crack", 2: "stain"}
    result = m.detection_metrics(truths, preds, names, ["good"], masks=images)
    for key in ("map50", "map50_95", "mask_map50", "mask_map75", "mask_map50_95", "mask_ap_small"):
        assert result[key] == pytest.approx(1.0), key
    # the boxes alone stay perfect when a mask loses pixels; mask AP does not
    thinned = {k: [_as_prediction(a, i) for i in a.instances] for k, a in images.items()}
    crack = thinned["a"][0]
    thinned["a"][0] = Prediction(
        crack.box, crack.score, 1, crack.mask & (np.arange(40) % 2 == 0), crack.mask_origin
    )
    worse = m.detection_metrics(truths, thinned, names, ["good"], masks=images)
    assert worse["map50_95"] == pytest.approx(1.0) and worse["mask_map50_95"] < 0.95


def test_augmentation_flips_boxes_and_masks_together(dataset) -> None:
    from synth.dataset import Dataset

    ds = Dataset(dataset)
    config = MaskRCNNConfig(**FAST, hflip=1.0, brightness=0.0, contrast=0.0)
    tile = next(
        t for t in split_tiles(canonical_sources(ds, "train"), config.tiling) if t.annotations.instances
    )
    image = torch.rand(3, *tile.annotations.size)
    target = target_of(tile, list(ds.classes))
    flipped, moved = augment((image, target), config, np.random.default_rng(0))
    assert torch.allclose(flipped, image.flip(-1)) and torch.equal(moved["masks"], target["masks"].flip(-1))
    for box, mask in zip(moved["boxes"], moved["masks"], strict=True):
        xs = torch.nonzero(mask.any(0)).flatten()
        assert (box[0].item(), box[2].item()) == (xs.min().item(), xs.max().item() + 1)


def test_finetune_keeps_the_tiling_and_refuses_network_changes(weights, dataset, tmp_path) -> None:
    model = finetune(weights, dataset, tmp_path / "ft.pt", epochs=1, lr=1e-4)
    assert model.config.tile == 64 and model.config.lr == 1e-4
    assert [t["start"].split(":")[0] for t in model.trained_on] == ["new", "weights"]
    with pytest.raises(ModelError, match="cannot change backbone"):
        finetune(weights, dataset, tmp_path / "x.pt", backbone="efficientnet_lite0")


@pytest.mark.parametrize("keep, kept_epoch", [("best_val", 1), ("last", 2)])
def test_the_weights_kept_are_the_best_val_epochs_or_the_last(
    dataset, tmp_path, monkeypatch, keep, kept_epoch
):
    """Val losses 1.0, 0.5, 0.9 for three epochs: best_val keeps epoch 1's tensors, last epoch 2's."""
    from train.maskrcnn import training

    states, losses = [], iter([1.0, 0.5, 0.9])

    def scripted_loss(model, tiles) -> float:
        states.append({k: v.clone() for k, v in model.network.state_dict().items()})
        return next(losses)

    monkeypatch.setattr(training, "validation_loss", scripted_loss)
    out = tmp_path / f"{keep}.pt"
    model = pretrain(dataset, out, MaskRCNNConfig(**{**FAST, "epochs": 3, "keep": keep}))
    assert [r["val_loss"] for r in model.history] == [1.0, 0.5, 0.9]
    saved = MaskRCNNModel.load(out).network.state_dict()
    for epoch, state in enumerate(states):
        same = all(torch.equal(saved[k], v) for k, v in state.items())
        assert same == (epoch == kept_epoch), epoch


def test_a_killed_training_leaves_weights_that_no_command_takes(dataset, tmp_path, monkeypatch) -> None:
    """Each epoch is checkpointed unfinished; evaluation and fine-tuning refuse such a file."""
    from evaluate.cli import main as evaluate_cli
    from train.maskrcnn import training

    def killed_in_epoch_1(model, tiles) -> float:
        if len(model.history) == 1:
            raise KeyboardInterrupt
        return 1.0

    monkeypatch.setattr(training, "validation_loss", killed_in_epoch_1)
    out = tmp_path / "killed.pt"
    with pytest.raises(KeyboardInterrupt):
        pretrain(dataset, out, MaskRCNNConfig(**{**FAST, "epochs": 8}))
    monkeypatch.undo()
    expected = (
        f"{out}: unfinished Mask R-CNN training (stopped after 1 epoch(s)); "
        "run `train pretrain maskrcnn` to the end before using it"
    )
    with pytest.raises(ModelError) as error:
        finetune(out, dataset, tmp_path / "ft.pt")
    assert str(error.value) == expected
    args = ["detector", "--weights", str(out), "--data", str(dataset), "--out", str(tmp_path / "e")]
    result = CliRunner().invoke(evaluate_cli, args)
    assert result.exit_code == 1 and expected in result.output
    assert WEIGHTS.read(out, unfinished=True)["finished"] is False


def test_bad_inputs_are_refused_with_the_culprit_named(weights, dataset, tmp_path) -> None:
    from tests.conftest import TINY_SCENE

    yolo_like = tmp_path / "best.pt"
    torch.save({"model": "pickled elsewhere", "train_args": {}}, yolo_like)
    with pytest.raises(ModelError, match=rf"{yolo_like}: not a Mask R-CNN weights file \(format None"):
        finetune(yolo_like, dataset, tmp_path / "o.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=rf"{junk}: not a Mask R-CNN weights file"):
        MaskRCNNModel.load(junk)
    with pytest.raises(ConfigError, match=r"tile: Input should be greater than or equal to 32 \(got 16\)"):
        MaskRCNNConfig(tile=16)
    with pytest.raises(ConfigError, match="backbone: Input should be 'mobilenet_v2' or 'efficientnet_lite0'"):
        MaskRCNNConfig(backbone="resnet50")
    renamed = {**TINY_SCENE, "defects": [{**TINY_SCENE["defects"][0], "name": "crack"}]}
    other = _render(tmp_path / "other", renamed)
    expected = (
        f"class names: {weights} has ['scratch', 'pit', 'water_stain'], {other} has "
        "['crack', 'water_stain']; both must be the same, in order"
    )
    with pytest.raises(ModelError) as error:
        finetune(weights, other, tmp_path / "o.pt")
    assert str(error.value) == expected
    from evaluate.cli import main as evaluate_cli

    args = ["detector", "--weights", str(weights), "--data", str(other), "--out", str(tmp_path / "e")]
    result = CliRunner().invoke(evaluate_cli, args)
    assert result.exit_code == 1 and expected in result.output
    good_only = {**TINY_SCENE, "impurities": [], "splits": {"train": {"count": 2, "good_fraction": 1.0}}}
    root = _render(tmp_path / "good", good_only)
    with pytest.raises(DataError, match=rf"{root}: no labelled instances in split 'train'"):
        pretrain(root, tmp_path / "g.pt", MaskRCNNConfig(**FAST))
    assert not (tmp_path / "g.pt").exists()


def test_the_cli_trains_and_reports(dataset, tmp_path) -> None:
    from train.cli import main

    out = tmp_path / "cli.pt"
    args = [
        "pretrain",
        "maskrcnn",
        "--data",
        str(dataset),
        "--out",
        str(out),
        "--tile",
        "64",
        "--epochs",
        "1",
    ]
    result = CliRunner().invoke(main, [*args, "--trainable-stages", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"{out}: Mask R-CNN on mobilenet_v2, 1 epochs of " in result.output
    bad = CliRunner().invoke(main, ["finetune", "maskrcnn", "--weights", str(out), "--data", str(dataset)])
    assert bad.exit_code == 2 and "--out" in bad.output
