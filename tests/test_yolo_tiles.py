"""YOLO on native-resolution tiles: exact tile labels, the tiling stamped in the weights and used
again by evaluation and prediction, the ImageNet and P2 models, and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from evaluate import importers
from synth.annotations import Annotations
from synth.dataset import Dataset
from train.tiling import Tiling, canonical_sources, split_tiles
from train.yolo.training import YoloSetupError, load_dataset, pretrain, split_args, train_args, write_tiles

TINY = {"epochs": 1, "batch": 4, "workers": 0, "plots": False, "device": "cpu"}


def _imported(tmp_path: Path, labels: str, size: tuple[int, int] = (32, 64)) -> Path:
    """A one-image canonical dataset (train split) from a YOLO label text."""
    src = tmp_path / "yolo"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    Image.fromarray(np.full(size, 100, np.uint8)).save(src / "images" / "a.png")
    (src / "labels" / "a.txt").write_text(labels)
    source = importers.scan("yolo", src, names=["crack"])
    importers.import_dataset(source, tmp_path / "ds", (1.0, 0.0, 0.0))
    return tmp_path / "ds"


def test_a_box_crossing_a_tile_border_is_clipped_to_its_visible_part(tmp_path) -> None:
    # a 64 x 32 image, the box x 24..40, y 8..24; tiles of 32 without overlap cut it at x = 32
    root = _imported(tmp_path, "0 0.5 0.5 0.25 0.5\n")
    tiling = Tiling(32, overlap=0.0, good_share=0.0, min_area_px=1)
    images = write_tiles(load_dataset(root), "train", tiling, tmp_path / "tiles", "detect", seed=0)
    assert [p.name for p in images] == ["a__x0_y0.png", "a__x32_y0.png"]
    labels = tmp_path / "tiles" / "labels" / "train"
    assert (labels / "a__x0_y0.txt").read_text() == "0 0.875000 0.500000 0.250000 0.500000\n"
    assert (labels / "a__x32_y0.txt").read_text() == "0 0.125000 0.500000 0.250000 0.500000\n"
    assert np.asarray(Image.open(images[1])).shape == (32, 32, 3)
    # polygons (segment): each tile's outline fills exactly the pixels the tile shows
    write_tiles(load_dataset(root), "train", tiling, tmp_path / "seg", "segment", seed=0)
    dataset = Dataset(root)
    for tile, x0 in (("a__x0_y0", 0), ("a__x32_y0", 32)):
        text = (tmp_path / "seg" / "labels" / "train" / f"{tile}.txt").read_text()
        filled = Annotations.from_yolo(text, (32, 32), dataset.classes).instance_map > 0
        expected = np.zeros((32, 64), bool)
        expected[8:24, 24:40] = True
        assert np.array_equal(filled, expected[:, x0 : x0 + 32])


def test_an_ultralytics_dataset_is_tiled_from_its_label_files_alike(tmp_path) -> None:
    """The domain-gap experiments train on single-class Ultralytics views (no dataset.json)."""
    import yaml

    labels = "0 0.5 0.5 0.25 0.5\n0 0.1 0.5 0.1 0.25\n"
    root = _imported(tmp_path, labels)
    view = tmp_path / "yolo" / "data.yaml"  # the import's source folder: images/, labels/
    view.write_text(yaml.safe_dump({"path": str(view.parent), "train": "images", "names": {0: "crack"}}))
    tiling = Tiling(32, overlap=0.25, good_share=0.0, min_area_px=4)
    for name, data in (("canonical", root), ("ultralytics", view)):
        write_tiles(load_dataset(data), "train", tiling, tmp_path / name, "segment", seed=0)
    texts = {
        name: {p.name: p.read_text() for p in (tmp_path / name / "labels" / "train").glob("*.txt")}
        for name in ("canonical", "ultralytics")
    }
    assert texts["canonical"] == texts["ultralytics"] and len(texts["canonical"]) == 3


def test_slivers_are_dropped_by_the_minimum_area(tmp_path) -> None:
    # the box x 30..40: 2 px of it (x 30, 31, 16 px tall = 32 px) lie in the first tile
    root = _imported(tmp_path, "0 0.546875 0.5 0.15625 0.5\n")
    text = {}
    for min_area in (32, 33):
        folder = tmp_path / f"min{min_area}"
        tiling = Tiling(32, overlap=0.0, good_share=0.0, min_area_px=min_area)
        write_tiles(load_dataset(root), "train", tiling, folder, "detect", seed=0)
        text[min_area] = sorted(p.name for p in (folder / "labels" / "train").glob("*.txt"))
    assert text[32] == ["a__x0_y0.txt", "a__x32_y0.txt"]
    assert text[33] == ["a__x32_y0.txt"]  # the empty first tile is not drawn: good_share 0


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """64² raster renders of the tiny metal scene: scratches, pits and stains, some cut by tiles."""
    from synth.config import parse_config
    from synth.render import render_dataset
    from tests.conftest import TINY_SCENE

    splits = {"train": {"count": 6, "good_fraction": 0.0}, "val": {"count": 2, "good_fraction": 0.0}}
    scene = {**TINY_SCENE, "splits": {**splits, "test": {"count": 3, "good_fraction": 0.34}}}
    root = tmp_path_factory.mktemp("rendered")
    render_dataset(parse_config(scene), root, renderer="raster", progress=False)
    return root


def test_reassembled_tile_labels_reproduce_the_image_labels(rendered, tmp_path) -> None:
    """Every tile's boxes, put back into image pixels, unite into each instance's image box; its
    polygons fill exactly the instance pixels the tile shows (one-part crops; a cut into several
    parts is one bridged polygon in YOLO, judged by its box); the tiles cover every pixel."""
    dataset = Dataset(rendered)
    tiling = Tiling(32, overlap=0.25, good_share=0.0, min_area_px=1)
    tiles = split_tiles(canonical_sources(dataset, "train"), tiling)
    write_tiles(load_dataset(rendered), "train", tiling, tmp_path / "det", "detect", seed=0)
    write_tiles(load_dataset(rendered), "train", tiling, tmp_path / "seg", "segment", seed=0)
    boxes: dict[tuple[str, int], list[float]] = {}
    covered: dict[tuple[str, int], np.ndarray] = {}
    polygons_checked = 0
    for tile in tiles:
        height, width = tile.annotations.size
        det = (tmp_path / "det" / "labels" / "train" / f"{tile.name}.txt").read_text().splitlines()
        seg = (tmp_path / "seg" / "labels" / "train" / f"{tile.name}.txt").read_text()
        parsed = Annotations.from_yolo(seg, (height, width), dataset.classes)
        assert len(det) == len(tile.annotations.instances) == len(parsed.instances)
        for line, instance, outline in zip(det, tile.annotations.instances, parsed.instances, strict=True):
            _, cx, cy, w, h = (float(v) for v in line.split())
            box = [tile.tile.x0 + (cx - w / 2) * width, tile.tile.y0 + (cy - h / 2) * height]
            box += [tile.tile.x0 + (cx + w / 2) * width, tile.tile.y0 + (cy + h / 2) * height]
            key = (tile.source.id, instance.instance_id)
            old = boxes.get(key, [np.inf, np.inf, -np.inf, -np.inf])
            boxes[key] = [min(old[0], box[0]), min(old[1], box[1]), max(old[2], box[2]), max(old[3], box[3])]
            mine = tile.annotations.instance_map == instance.instance_id
            if len(instance.rings) == 1 and not instance.holes:
                assert np.array_equal(parsed.instance_map == outline.instance_id, mine)
                polygons_checked += 1
            full = covered.setdefault(key, np.zeros(dataset.samples("train")[0].instance_map().shape, bool))
            full[tile.tile.y0 : tile.tile.y1, tile.tile.x0 : tile.tile.x1] |= mine
    expected = {}
    for sample in dataset.samples("train"):
        annotations = sample.annotations(dataset.classes)
        for instance in annotations.instances:
            key = (sample.id, instance.instance_id)
            expected[key] = instance.xyxy
            assert np.array_equal(covered[key], annotations.instance_map == instance.instance_id)
    assert set(boxes) == set(expected) and len(expected) >= 10
    for key, box in boxes.items():
        assert np.allclose(box, expected[key], atol=0.01), key
    assert polygons_checked >= 10


def test_empty_tiles_are_drawn_to_the_requested_share(rendered) -> None:
    dataset = Dataset(rendered)
    everything = split_tiles(
        canonical_sources(dataset, "train"), Tiling(32, overlap=0.25, good_share=0.0, min_area_px=1)
    )
    labelled = [t for t in everything if t.annotations.instances]
    assert len(labelled) == len(everything)
    half = split_tiles(
        canonical_sources(dataset, "train"), Tiling(32, overlap=0.25, good_share=0.5, min_area_px=1)
    )
    empty = [t for t in half if not t.annotations.instances]
    assert len(half) - len(empty) == len(labelled)
    assert len(empty) == min(len(labelled), 6 * 9 - len(labelled))  # 9 tiles a 64² image
    again = split_tiles(
        canonical_sources(dataset, "train"), Tiling(32, overlap=0.25, good_share=0.5, min_area_px=1)
    )
    assert [t.name for t in again] == [t.name for t in half]


@pytest.fixture(scope="module")
def tiled_run(rendered, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiled") / "run"
    args = train_args(**TINY, tile=32, imgsz=64, freeze_backbone_epochs=1)
    return pretrain(rendered, run_dir, args, task="segment")


def test_tiled_training_stamps_its_tiling_and_evaluation_infers_with_it(
    tiled_run, rendered, tmp_path, monkeypatch
) -> None:
    import torch

    from evaluate import detector

    checkpoint = torch.load(tiled_run.weights, map_location="cpu", weights_only=False)
    tiling = {"tile": 32, "overlap": 0.25, "good_share": 0.25, "min_area_px": 9}
    assert checkpoint["defectsynth"] == {"tiling": tiling, "names": ["scratch", "pit", "water_stain"]}
    assert checkpoint["train_args"]["imgsz"] == 64
    record = json.loads((tiled_run.run_dir / "run.json").read_text())
    assert record["tiling"] == tiling and record["freeze_backbone_epochs"] == 1
    assert Path(record["model"]).name == "mobilenetv2-yolo-seg.yaml"
    train_list = (tiled_run.run_dir / "train.txt").read_text().split()
    assert all("__x" in Path(p).stem for p in train_list)

    calls = []
    real = detector.detect_tiled

    def spy(image, tile_detector, tile, overlap, batch):
        calls.append((image.shape, tile, overlap))
        return real(image, tile_detector, tile, overlap, batch)

    monkeypatch.setattr(detector, "detect_tiled", spy)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        detector.detector, ["--weights", str(tiled_run.weights), "--data", str(rendered), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert calls == [((64, 64, 3), 32, 0.25)] * 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "yolo" and "mask_map50" in metrics and "map50" in metrics


def test_prediction_takes_the_weights_tiling(tiled_run, rendered, tmp_path) -> None:
    from evaluate.predict import predict

    out = tmp_path / "predict"
    args = ["--weights", str(tiled_run.weights), "--source", str(rendered / "images" / "test")]
    result = CliRunner().invoke(predict, [*args, "--out", str(out), "--mm-per-pixel", "0.1"])
    assert result.exit_code == 0, result.output
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert [(r["tile"], r["overlap"]) for r in reports] == [(32, 0.25)] * 3


def test_shipped_models_have_an_imagenet_backbone_and_p2_adds_stride_4(tmp_path) -> None:
    import torch

    from train import backbones
    from train.yolo.offline import import_ultralytics
    from train.yolo.training import P2_MODELS, _load_model

    import_ultralytics(tmp_path)
    yolo, task = _load_model(P2_MODELS["detect"], None)
    assert task == "detect" and yolo.model.stride.tolist() == [4.0, 8.0, 16.0, 32.0]
    reference = backbones.mobilenet_v2().features.state_dict()
    loaded = yolo.model.model[0].m.state_dict()
    assert len(loaded) > 300 and all(torch.equal(reference[k], v) for k, v in loaded.items())


def test_bad_tiling_and_model_options_are_refused(rendered, tmp_path) -> None:
    with pytest.raises(YoloSetupError, match="overlap: need a tile size"):
        split_args(train_args(overlap=0.3))
    with pytest.raises(YoloSetupError, match="tiling tile 16"):
        split_args(train_args(tile=16))
    with pytest.raises(
        YoloSetupError, match=r"unknown ultralytics train argument\(s\) freeze_backbone_epoch$"
    ):
        train_args(freeze_backbone_epoch=2)  # misspelt
    with pytest.raises(YoloSetupError, match="--p2 picks a shipped model; --model yolo11n.yaml"):
        pretrain(rendered, tmp_path / "p2", train_args(**TINY), model="yolo11n.yaml", p2=True)
    with pytest.raises(YoloSetupError, match="no ImageNet .TorchVision. backbone"):
        pretrain(
            rendered, tmp_path / "fz", train_args(**TINY, freeze_backbone_epochs=1), model="yolo11n.yaml"
        )


def test_every_batch_is_an_optimizer_step_unless_nbs_is_given() -> None:
    assert train_args(batch=4)["nbs"] == 4
    assert train_args(batch=4, sets=["nbs=64"])["nbs"] == 64
    assert train_args(device="cpu")["nbs"] == train_args(device="cpu")["batch"] == 8
