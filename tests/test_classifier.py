"""The crop classifier: crops cut from instance masks carry the right class, the crop geometry,
a tiny offline training with the ImageNet backbone, its weights file, and bad input."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from synth.annotations import Prediction
from synth.config import parse_config
from synth.dataset import Dataset
from synth.errors import ConfigError, DataError, ModelError
from synth.render import render_dataset
from tests.conftest import TINY_SCENE
from train.classifier.config import NOT_A_DEFECT, ClassifierConfig
from train.classifier.data import Crop, class_names, cut, epoch_batches, load_crops, window
from train.classifier.model import CropClassifier
from train.classifier.training import finetune, pretrain
from train.cli import main as train_cli

TINY = ClassifierConfig(image_size=32, epochs=2, crops_per_epoch=8, batch_size=4, patience=1)


def defect_scene(tiny_scene: dict, **renames: str) -> dict:
    """The tiny scene with defects in its train split; `renames` renames defect classes."""
    tiny_scene["splits"]["train"] = {"count": 8, "good_fraction": 0.25}
    for defect in tiny_scene["defects"]:
        defect["name"] = renames.get(defect["name"], defect["name"])
    return tiny_scene


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classifier") / "data"
    render_dataset(
        parse_config(defect_scene(copy.deepcopy(TINY_SCENE))), root, renderer="raster", progress=False
    )
    return root


def test_crops_carry_the_class_of_their_instance(tiny_data: Path) -> None:
    dataset = Dataset(tiny_data)
    samples = dataset.samples("train")
    pool = load_crops(tiny_data, "train", ClassifierConfig(good_crops_per_image=3))
    expected = []
    for index, sample in enumerate(samples):
        annotations = sample.annotations(dataset.classes)
        by_id = annotations.class_by_id
        for inst in annotations.instances:
            label = by_id[inst.class_id].name if by_id[inst.class_id].kind == "defect" else NOT_A_DEFECT
            expected.append((index, inst.xyxy, label))
    instance_crops = [(c.image, c.box, c.label) for c in pool.crops[: len(expected)]]
    assert instance_crops == expected
    assert {label for _, _, label in expected} == {"scratch", "pit", NOT_A_DEFECT}  # stains are not defects
    good = [c for c in pool.crops[len(expected) :]]
    good_images = [i for i, s in enumerate(samples) if s.good]
    assert good_images and [c.image for c in good] == [i for i in good_images for _ in range(3)]
    for crop in good:
        assert crop.label == NOT_A_DEFECT
        x0, y0, x1, y1 = crop.box
        assert x0 >= 0 and y0 >= 0 and x1 <= 64 and y1 <= 64
    sizes = {(i.bbox[2], i.bbox[3]) for s in samples for i in s.annotations(dataset.classes).defects}
    assert {(round(c.box[2] - c.box[0]), round(c.box[3] - c.box[1])) for c in good} <= sizes
    again = load_crops(tiny_data, "train", ClassifierConfig(good_crops_per_image=3))
    assert again.crops == pool.crops  # seeded


def test_proposed_regions_are_labelled_by_the_defect_they_overlap_most(tiny_data: Path) -> None:
    dataset = Dataset(tiny_data)
    samples = dataset.samples("train")
    annotations = [s.annotations(dataset.classes) for s in samples]
    index, scratch = next((i, a.defects[0]) for i, a in enumerate(annotations) if a.defects)
    x0, y0, x1, y1 = (int(v) for v in scratch.xyxy)
    inside = annotations[index].instance_map[y0:y1, x0:x1] == scratch.instance_id
    empty = np.zeros((2, 2), bool)
    empty[0, 0] = True
    free = next(
        (x, y)
        for y in range(63)
        for x in range(63)
        if not annotations[index].instance_map[y : y + 2, x : x + 2].any()
    )
    calls = []

    def proposals(image: np.ndarray) -> list[Prediction]:
        calls.append(image.shape)
        if len(calls) != index + 1:
            return []
        return [
            Prediction((x0, y0, x1, y1), 0.9, 0, inside, (x0, y0)),
            Prediction((free[0], free[1], free[0] + 2, free[1] + 2), 0.8, 0, empty, free),
        ]

    plain = load_crops(tiny_data, "train", ClassifierConfig())
    pool = load_crops(tiny_data, "train", ClassifierConfig(), proposals)
    assert len(calls) == len(samples)
    name = dataset.classes[scratch.class_id - 1].name
    added = Counter(pool.crops) - Counter(plain.crops)
    assert added == Counter(
        [
            Crop(index, (x0, y0, x1, y1), name),
            Crop(index, (free[0], free[1], free[0] + 2, free[1] + 2), NOT_A_DEFECT),
        ]
    )


def test_epoch_batches_are_class_balanced_and_labelled(tiny_data: Path) -> None:
    config = ClassifierConfig(image_size=32, crops_per_epoch=300, batch_size=50, jitter=0.0)
    pool = load_crops(tiny_data, "train", config)
    names = class_names([tiny_data])
    assert names == [NOT_A_DEFECT, "scratch", "pit"]
    labels = np.concatenate([y for _, y in epoch_batches([pool], names, config, epoch=0)])
    counts = np.bincount(labels, minlength=3)
    assert counts.sum() == 300 and counts.min() > 70  # a third each, give or take the draw
    first = next(epoch_batches([pool], names, config, epoch=0))
    assert first[0].shape == (50, 32, 32, 3) and first[0].dtype == np.float32
    assert np.array_equal(first[0], next(epoch_batches([pool], names, config, epoch=0))[0])


def test_crop_geometry_is_native_resolution_mirrored_and_scaled_only_down() -> None:
    image = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    config = ClassifierConfig(image_size=32, context=0.5)
    assert window((50, 40, 60, 44), 0.5, 32) == (39, 26, 32)  # a small box: a 32 px window
    np.testing.assert_array_equal(cut(image, (50, 40, 60, 44), config), image[26:58, 39:71])
    mirrored = cut(image, (0, 0, 4, 4), config)  # the window starts at -14, -14
    np.testing.assert_array_equal(mirrored[14:, 14:], image[:18, :18])
    np.testing.assert_array_equal(mirrored[13, 14:], image[1, :18])  # reflected about row 0
    assert window((10, 10, 74, 26), 0.5, 32) == (-22, -46, 128)  # 64 px long: a 128 px window
    large = cut(image, (10, 10, 74, 26), config)
    assert large.shape == (32, 32, 3)  # scaled down to the input size


def test_bad_classifier_settings_name_the_field() -> None:
    with pytest.raises(ConfigError) as error:
        ClassifierConfig(image_size=16, jitter=1.5)
    assert str(error.value) == (
        "invalid classifier settings: image_size: Input should be greater than or equal to 32 (got 16); "
        "jitter: Input should be less than 1 (got 1.5)"
    )


def test_tiny_training_saves_reloads_and_finetunes(tiny_data: Path, tmp_path: Path, tiny_scene: dict) -> None:
    out = tmp_path / "classifier.pt"
    model = pretrain([tiny_data], out, TINY)
    assert model.class_names == [NOT_A_DEFECT, "scratch", "pit"]
    assert 1 <= len(model.history) <= 2 and "val_balanced_accuracy" in model.history[0]
    loaded = CropClassifier.load(out)
    assert torch.load(out, weights_only=True)["finished"] is True  # written once, when training ends
    image = Dataset(tiny_data).samples("test")[0].image()
    boxes = [(10.0, 10.0, 20.0, 30.0), (40.0, 5.0, 44.0, 9.0)]
    probabilities = loaded.classify(image, boxes)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, model.classify(image, boxes), rtol=1e-5)
    frozen = loaded.network.backbone.blocks[0][0].conv_dw.weight
    assert not frozen.requires_grad and loaded.network.head[1].weight.requires_grad
    again = pretrain([tiny_data], tmp_path / "again.pt", TINY)  # the same seed: the same weights
    for a, b in zip(model.network.state_dict().values(), again.network.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    tuned = finetune(out, [tiny_data], tmp_path / "tuned.pt", epochs=1)
    assert tuned.trained_on == model.trained_on and len(tuned.history) == 1
    other = tmp_path / "other"
    render_dataset(
        parse_config(defect_scene(tiny_scene, pit="dent")), other, renderer="raster", progress=False
    )
    with pytest.raises(ModelError) as error:
        finetune(out, [other], tmp_path / "x.pt")
    assert str(error.value) == (
        f"class names: {out} has ['scratch', 'pit'], {other} has ['scratch', 'dent']; "
        "every one of the data's must be one of them"
    )


def test_cli_refuses_data_without_defects_and_non_classifier_weights(
    tiny_scene: dict, tmp_path: Path
) -> None:
    good_only = tmp_path / "good"
    render_dataset(parse_config(tiny_scene), good_only, renderer="raster", progress=False)  # train: all good
    result = CliRunner().invoke(
        train_cli, ["pretrain", "classifier", "--data", str(good_only), "--out", str(tmp_path / "c.pt")]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1] == (
        f"Error: {good_only}: no defect instance in the train split: nothing to learn (a render's train "
        "split is often all good: render defects into it, or add real data)"
    )
    not_weights = tmp_path / "x.pt"
    torch.save({"state_dict": {}}, not_weights)
    result = CliRunner().invoke(
        train_cli,
        [
            "finetune",
            "classifier",
            "--weights",
            str(not_weights),
            "--data",
            str(good_only),
            "--out",
            str(tmp_path / "y.pt"),
        ],
    )
    assert result.output == (
        f"Error: {not_weights}: not a classifier weights file (format None; written by "
        "`train pretrain classifier`)\n"
    )
    with pytest.raises(DataError):
        load_crops(good_only, "missing", ClassifierConfig())
