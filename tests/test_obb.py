"""Oriented boxes: YOLO-OBB labels beside the axis-aligned ones, checked by `synth verify`, read
by Ultralytics' OBB loader, trained with `train pretrain yolo --task obb`, and measured by severity."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from evaluate.severity import measure
from synth.annotations import Annotations, ClassInfo
from synth.config import parse_config
from synth.dataset import Dataset, verify
from synth.render import render_dataset
from synth.writers import oriented_box, yolo_obb_labels
from train.cli import main as train_cli
from train.yolo.offline import import_ultralytics
from train.yolo.training import YoloSetupError, obb_view, write_data_file

CLASSES = (ClassInfo(1, "scratch"), ClassInfo(2, "pit"), ClassInfo(3, "water_stain", "impurity"))


def rectangle_mask(size: tuple[int, int], centre, sides, angle_deg: float) -> np.ndarray:
    """The pixels whose centre lies inside a rotated rectangle (exact rasterisation)."""
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]] + 0.5
    t = np.deg2rad(angle_deg)
    u = (xs - centre[0]) * np.cos(t) + (ys - centre[1]) * np.sin(t)
    v = -(xs - centre[0]) * np.sin(t) + (ys - centre[1]) * np.cos(t)
    return (np.abs(u) <= sides[0] / 2) & (np.abs(v) <= sides[1] / 2)


def angle_gap(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


@pytest.mark.parametrize(
    ("centre", "sides", "angle"),
    [
        ((60.3, 50.7), (70.0, 9.0), 30.0),
        ((64.0, 64.0), (50.0, 14.0), 120.0),
        ((55.5, 61.2), (40.0, 6.0), 77.0),
    ],
)
def test_obb_label_of_a_rotated_rectangle_recovers_angle_and_sides(centre, sides, angle) -> None:
    size = (120, 128)
    mask = rectangle_mask(size, centre, sides, angle)
    (cx, cy), (length, width), direction = oriented_box(mask)
    assert abs(length - sides[0]) < 1.0 and abs(width - sides[1]) < 1.0
    assert abs(cx - centre[0]) < 0.5 and abs(cy - centre[1]) < 0.5
    # within a pixel at the rectangle's ends: the angle error times the half length
    assert np.deg2rad(angle_gap(direction, angle)) * sides[0] / 2 < 1.0
    annotations = Annotations.from_instance_map(mask.astype(np.uint16), {1: 1}, CLASSES)
    fields = yolo_obb_labels(annotations).split()
    assert fields[0] == "0" and len(fields) == 9
    corners = np.array([float(v) for v in fields[1:]]).reshape(4, 2) * [size[1], size[0]]
    (_, _), (w, h), a = cv2.minAreaRect(corners.astype(np.float32))  # what Ultralytics computes
    assert sorted([w, h]) == pytest.approx(sorted([length, width]), abs=1e-3)
    truth = cv2.boxPoints((centre, sides, angle))
    assert max(np.linalg.norm(corners - t, axis=1).min() for t in truth) < 1.0


def test_axis_aligned_block_is_exact_and_boxes_are_clipped_to_the_image() -> None:
    instance_map = np.zeros((40, 50), np.uint16)
    instance_map[10:14, 5:35] = 1  # 30 x 4 px
    instance_map[30:40, 44:50] = 2  # 6 x 10, against the right and bottom border
    annotations = Annotations.from_instance_map(instance_map, {1: 1, 2: 2}, CLASSES)
    lines = [line.split() for line in yolo_obb_labels(annotations).splitlines()]
    assert [line[0] for line in lines] == ["0", "1"]
    first = np.array([float(v) for v in lines[0][1:]]).reshape(4, 2) * [50, 40]
    assert sorted(map(tuple, np.round(first, 4))) == [(5, 10), (5, 14), (35, 10), (35, 14)]
    second = np.array([float(v) for v in lines[1][1:]]).reshape(4, 2)
    assert second.max() == 1.0 and sorted(map(tuple, np.round(second * [50, 40], 4)))[0] == (44, 30)
    assert oriented_box(instance_map == 1) == ((20.0, 12.0), (30.0, 4.0), 0.0)
    assert yolo_obb_labels(Annotations.from_instance_map(np.zeros((4, 4), np.uint16), {}, CLASSES)) == ""


def test_severity_measures_an_oriented_box() -> None:
    gray = np.full((100, 100), 100, np.uint8)
    box = ((50.0, 40.0), (8.0, 60.0), 30.0)  # given with the short side first
    gray[rectangle_mask(gray.shape, box[0], (60.0, 8.0), 120.0)] = 30
    m = measure(gray, (0, 0, 0, 0), 0.1, oriented=box)
    assert (m.length_mm, m.width_mm, m.angle_deg) == (pytest.approx(6.0), pytest.approx(0.8), 120.0)
    assert m.area_mm2 == pytest.approx(480 * 0.01)
    assert m.contrast > 0.2  # the rotated rectangle, not its axis-aligned box, is inside


def render(tiny_scene: dict, out: Path) -> Path:
    render_dataset(parse_config(tiny_scene), out, renderer="raster", progress=False)
    return out


def test_rendered_obb_labels_match_instances_and_verify_checks_them(tiny_scene: dict, tmp_path: Path) -> None:
    root = render(tiny_scene, tmp_path / "data")
    dataset = Dataset(root)
    for sample in dataset.samples("test"):
        annotations = sample.annotations(dataset.classes)
        text = sample.obb_labels_path.read_text()
        assert text == yolo_obb_labels(annotations)
        axis_aligned = [line.split()[0] for line in sample.labels_path.read_text().splitlines()]
        assert [line.split()[0] for line in text.splitlines()] == axis_aligned
        assert len(axis_aligned) == len(annotations.instances)
    assert verify(root) == []
    labels = root / "labels_obb" / "test"
    first, second = sorted(p for p in labels.glob("*.txt") if p.read_text())[:2]
    lines = first.read_text().splitlines()
    fields = lines[0].split()
    fields[1] = f"{float(fields[1]) + 0.05:.6f}"
    first.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")
    second.write_text(second.read_text() + "1 0 0 1 0 1 1 0 1\n")
    missing = sorted(labels.glob("*.txt"))[-1]
    missing.unlink()
    count = len(second.read_text().splitlines())
    assert verify(root) == sorted(
        [
            f"test/{first.stem}: labels_obb line 1: not the minimum-area rectangle of its mask",
            f"test/{second.stem}: OBB labels list {count} boxes, masks have {count - 1} instances",
            f"test/{missing.stem}: missing labels_obb/test/{missing.stem}.txt",
        ],
        key=lambda line: line.split(":")[0],
    )


def test_imported_datasets_get_obb_labels(tmp_path: Path) -> None:
    from evaluate.importers import import_dataset, scan

    source = tmp_path / "src"
    for folder, mask in (("MT_Free", None), ("MT_Crack", (slice(4, 8), slice(2, 30)))):
        (source / folder).mkdir(parents=True)
        cv2.imwrite(str(source / folder / "a.jpg"), np.full((32, 40), 90, np.uint8))
        truth = np.zeros((32, 40), np.uint8)
        if mask is not None:
            truth[mask] = 255
        cv2.imwrite(str(source / folder / "a.png"), truth)
    out = tmp_path / "imported"
    import_dataset(scan("folders", source), out, fractions=(1.0, 0.0, 0.0))
    labels = {p.parent.name + "/" + p.stem: p.read_text() for p in (out / "labels_obb").rglob("*.txt")}
    assert labels == {  # the 28 x 4 px crack at x 2..30, y 4..8 of a 40 x 32 image
        "train/MT_Crack__a": "0 0.050000 0.250000 0.050000 0.125000 0.750000 0.125000 0.750000 0.250000\n",
        "train/MT_Free__a": "",
    }
    assert verify(out) == []


def test_obb_labels_load_in_ultralytics_obb_dataset(tiny_scene: dict, tmp_path: Path) -> None:
    root = render(tiny_scene, tmp_path / "data")
    import_ultralytics(tmp_path / "run")
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    dataset = Dataset(root)
    samples = [s for s in dataset.samples("test") if s.meta["instances"]]
    images = [s.image_path.resolve() for s in samples]
    names = [c.name for c in dataset.classes]
    data = check_det_dataset(str(write_data_file(tmp_path / "run", names, images, images, task="obb")))
    loaded = YOLODataset(img_path=data["train"], data=data, task="obb", imgsz=64, augment=False)
    assert len(loaded) == len(samples)
    compared = 0
    for sample, label, item in zip(
        samples, loaded.labels, (loaded[i] for i in range(len(loaded))), strict=True
    ):
        annotations = sample.annotations(dataset.classes)
        assert Path(label["im_file"]).name == sample.image_path.name
        assert label["cls"].ravel().tolist() == [i.class_id - 1 for i in annotations.instances]
        for xywhr, inst in zip(item["bboxes"].numpy(), annotations.instances, strict=True):
            (cx, cy), (length, width), _ = oriented_box(annotations.instance_map == inst.instance_id)
            if cx - length / 2 < 0 or cy - length / 2 < 0 or cx + length / 2 > 64 or cy + length / 2 > 64:
                continue  # clipped at the border: no longer the same rectangle
            assert xywhr[:4] * 64 == pytest.approx([cx, cy, length, width], abs=1e-3)
            compared += 1
    assert compared >= 3


def obb_scene(tiny_scene: dict) -> dict:
    """The tiny scene with defects in its train split too, so that training sees boxes."""
    tiny_scene["splits"]["train"] = {"count": 4, "good_fraction": 0.25}
    return tiny_scene


def test_pretrain_yolo_task_obb_trains_one_epoch_offline(tiny_scene: dict, tmp_path: Path) -> None:
    root = render(obb_scene(tiny_scene), tmp_path / "data")
    out = tmp_path / "obb_run"
    options = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0", "--device", "cpu"]
    result = CliRunner().invoke(
        train_cli,
        [
            "pretrain",
            "yolo",
            "--data",
            str(root),
            "--task",
            "obb",
            "--out",
            str(out),
            *options,
            "--set",
            "plots=false",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert record["task"] == "obb" and record["model"] == "yolo11n-obb.yaml"
    assert any(key.startswith("metrics/mAP50") for key in record["metrics"])
    listed = (out / "train.txt").read_text().split()
    assert len(listed) == 4 and all("/obb/train-" in path for path in listed)
    view = Path(listed[0]).parent.parent
    assert (view / "labels").resolve() == (root / "labels_obb" / "train").resolve()
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == {
        0: "scratch",
        1: "pit",
        2: "water_stain",
    }
    from ultralytics import YOLO

    assert YOLO(record["weights"]).task == "obb"


def test_obb_training_on_a_dataset_without_obb_labels_names_the_folder(tmp_path: Path) -> None:
    images = [tmp_path / "old" / "images" / "train" / "a.png"]
    with pytest.raises(YoloSetupError) as error:
        obb_view(tmp_path / "run", images)
    labels = tmp_path / "old" / "labels_obb" / "train"
    assert str(error.value) == (
        f"{labels}: no OBB labels for {images[0].parent} (a canonical dataset written before oriented "
        "boxes lacks them: render or import it again with --overwrite)"
    )
