"""Measurements in mm, severity scores and the tiled `evaluate predict` command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from evaluate.predict import describe, draw_overlay, predict
from evaluate.severity import Measurement, load_severity, measure, oriented_extent
from synth.annotations import Prediction
from train.yolo.toydata import TOY_NAMES, make_toy_dataset
from train.yolo.training import pretrain, train_args

MM = 0.06


def test_block_measures_exactly_in_mm() -> None:
    gray = np.full((100, 120), 100, np.uint8)
    gray[30:34, 20:70] = 200  # 50 x 4 px
    mask = np.ones((4, 50), bool)
    m = measure(gray, (20, 30, 70, 34), MM, mask, (20, 30))
    assert m.length_mm == 50 * MM and m.width_mm == 4 * MM
    assert m.area_mm2 == 200 * MM**2
    assert m.angle_deg in (0.0, 180.0) or m.angle_deg == pytest.approx(0.0, abs=1e-6)
    assert m.contrast == 100 / 255
    assert m.location_weight == 1.0


def test_box_only_detection_measures_the_box() -> None:
    gray = np.zeros((80, 80), np.uint8)
    m = measure(gray, (10.5, 20.0, 20.5, 70.0), 0.1)
    assert (m.length_mm, m.width_mm, m.angle_deg) == (50 * 0.1, 10 * 0.1, 90.0)
    assert m.area_mm2 == 500 * 0.1**2


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 120.0])
def test_oriented_extent_follows_a_rotated_scratch(angle: float) -> None:
    mask = np.zeros((300, 300), np.uint8)
    corners = cv2.boxPoints(((150.0, 150.0), (160.0, 6.0), angle))
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    length, width, direction = oriented_extent(mask.astype(bool))
    # rasterising adds up to about one pixel square (sqrt 2 on the diagonal) on each side
    assert length == pytest.approx(160, abs=3) and width == pytest.approx(6, abs=3)
    assert min(abs(direction - angle), 180 - abs(direction - angle)) < 2.0


def test_location_weight_is_the_largest_under_the_defect() -> None:
    gray = np.zeros((50, 50), np.uint8)
    weights = np.full((50, 50), 0.2, np.float32)
    weights[:, 30:] = 0.9
    inside = measure(gray, (0, 0, 10, 10), MM, np.ones((10, 10), bool), (5, 5), weights)
    across = measure(gray, (0, 0, 10, 10), MM, np.ones((10, 10), bool), (25, 5), weights)
    assert (inside.location_weight, across.location_weight) == (
        pytest.approx(0.2),
        pytest.approx(0.9),
    )


def test_severity_per_class_from_yaml(tmp_path: Path) -> None:
    config = tmp_path / "severity.yaml"
    config.write_text(
        "default: {length: 1, width: 2, area: 3, contrast: 4, location: 5}\n"
        "classes: {stain: {length: 0, area: 10}}\n"
    )
    model = load_severity(config)
    m = Measurement(2.0, 0.5, 0.0, 1.5, 0.25, 1.0)
    assert model.score("scratch", m) == 2 * 1 + 0.5 * 2 + 1.5 * 3 + 0.25 * 4 + 1 * 5
    assert model.score("stain", m) == 0.5 * 2 + 1.5 * 10 + 0.25 * 4 + 1 * 5


def test_default_severity_weights_length_for_scratches_and_area_for_stains() -> None:
    model = load_severity()
    assert model.coefficients("scratch")["length"] > model.coefficients("scratch")["area"]
    assert model.coefficients("water_stain")["length"] == 0
    assert model.coefficients("water_stain")["area"] > 0


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("default: {length: 1}\n", "default: missing width, area, contrast, location"),
        (
            "default: {length: 1, width: 1, area: 1, contrast: 1, location: 1, lenght: 2}\n",
            "default.lenght: unknown coefficient",
        ),
        (
            "default: {length: 1, width: 1, area: 1, contrast: 1, location: 1}\n"
            "classes: {scratch: {length: big}}\n",
            "classes.scratch.length: expected a number",
        ),
        ("classes: {}\n", "expected a mapping with 'default'"),
    ],
)
def test_bad_severity_files_are_named(tmp_path: Path, text: str, error: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=f"{config}: .*{error}"):
        load_severity(config)


def test_describe_reports_exact_values_and_draws() -> None:
    image = np.full((60, 80, 3), 50, np.uint8)
    image[10:15, 10:40] = 150
    detection = Prediction((10, 10, 40, 15), 0.8, 0, np.ones((5, 30), bool), (10, 10))
    records, ordered = describe(image, [detection], TOY_NAMES, MM, load_severity())
    (record,) = records
    assert record["class"] == "scratch" and ordered == [detection]
    assert (record["length_mm"], record["width_mm"], record["area_mm2"]) == (
        30 * MM,
        5 * MM,
        150 * MM**2,
    )
    assert record["polygons"] == [[[10, 10], [10, 14], [39, 14], [39, 10]]]
    m = Measurement(**{k: record[k] for k in Measurement.__dataclass_fields__})
    assert record["severity"] == load_severity().score("scratch", m)
    overlay = draw_overlay(image, records, ordered)
    assert overlay.shape == image.shape and (overlay != image).any()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = make_toy_dataset(tmp_path_factory.mktemp("toy"), {"train": 4, "val": 2}, seed=3)
    args = train_args(epochs=1, imgsz=64, batch=4, workers=0, plots=False, device="cpu")
    run_dir = tmp_path_factory.mktemp("run") / "seg"
    # from scratch: at conf 0.001 a random head still finds boxes on noise, an ImageNet one may not
    return pretrain(data, run_dir, args, task="segment", model="yolo11n-seg.yaml").weights


def test_predict_command_tiles_large_images(weights: Path, tmp_path: Path) -> None:
    source = tmp_path / "images"
    source.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a": (131, 157), "b": (40, 50)}.items():
        cv2.imwrite(str(source / f"{name}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    out = tmp_path / "out"
    args = ["--weights", str(weights), "--source", str(source), "--out", str(out)]
    args += ["--tile", "64", "--overlap", "0.35", "--mm-per-pixel", "0.06", "--conf", "0.001"]
    result = CliRunner().invoke(predict, [*args, "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    severity = load_severity()
    for name, (h, w) in {"a": (131, 157), "b": (40, 50)}.items():
        report = json.loads((out / f"{name}.json").read_text())
        assert (report["width"], report["height"], report["tile"]) == (w, h, 64)
        assert cv2.imread(str(out / f"{name}.png")).shape == (h, w, 3)
        assert report["detections"], "an untrained model at conf 0.001 still finds boxes"
        for d in report["detections"]:
            x0, y0, x1, y1 = d["box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert d["length_mm"] >= d["width_mm"] >= 0
            m = Measurement(**{k: d[k] for k in Measurement.__dataclass_fields__})
            assert d["severity"] == pytest.approx(severity.score(d["class"], m))
        severities = [d["severity"] for d in report["detections"]]
        assert severities == sorted(severities, reverse=True)


def test_predict_rejects_bad_options(weights: Path, tmp_path: Path) -> None:
    base = ["--weights", str(weights), "--source", str(tmp_path)]
    result = CliRunner().invoke(predict, [*base, "--mm-per-pixel", "0"])
    assert result.exit_code == 2 and "--mm-per-pixel" in result.output
    result = CliRunner().invoke(predict, [*base, "--mm-per-pixel", "0.1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and f"{tmp_path}: no images" in result.output
