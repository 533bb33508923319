"""The two-stage hybrid: regions of an anomaly map, the metrics of both systems on hand-built
cases, and an end-to-end `evaluate hybrid` run on a tiny raster dataset."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from evaluate import anomaly
from evaluate.cli import main as evaluate_cli
from evaluate.hybrid import (
    Inspected,
    choose_reject,
    detection_map,
    detector_alone,
    evaluate_hybrid,
    hybrid_metrics,
    kept_regions,
    map_alone,
    paint,
    table,
)
from evaluate.importers import import_dataset, scan
from synth.annotations import UNNAMED, Annotations, ClassInfo, Prediction, predictions_from_map
from synth.config import parse_config
from synth.dataset import Dataset
from synth.errors import DataError
from synth.render import render_dataset
from tests.conftest import TINY_SCENE
from train.classifier.config import NOT_A_DEFECT, ClassifierConfig
from train.classifier.training import pretrain as pretrain_classifier
from train.patchcore import Coreset, PatchCoreConfig
from train.patchcore import pretrain as pretrain_coreset
from train.segment.config import SegmentConfig
from train.segment.model import Segmenter
from train.segment.training import pretrain as pretrain_segmenter


def test_regions_come_out_exactly_for_known_blobs() -> None:
    score = np.zeros((12, 16), np.float32)
    score[1:4, 2:6] = 0.6  # a 4 x 3 block
    score[2, 3] = 0.9  # its peak
    score[6, 10] = 0.5  # exactly at the threshold: flagged
    score[7, 11] = 0.7  # touches the one above diagonally: the same region (8-connected)
    score[9:11, 0:2] = 0.4  # below the threshold
    score[10, 14:16] = 0.8  # against the right border
    regions = predictions_from_map(score, 0.5)
    assert [r.box for r in regions] == [(2, 1, 6, 4), (10, 6, 12, 8), (14, 10, 16, 11)]
    assert [r.score for r in regions] == pytest.approx([0.9, 0.7, 0.8])
    assert [r.mask_origin for r in regions] == [(2, 1), (10, 6), (14, 10)]
    assert all(r.class_id == UNNAMED for r in regions)
    np.testing.assert_array_equal(regions[0].mask, np.ones((3, 4), bool))
    np.testing.assert_array_equal(regions[1].mask, [[True, False], [False, True]])
    np.testing.assert_array_equal(paint(regions, score.shape), score >= 0.5)
    assert predictions_from_map(score, 0.95) == []


CLASSES = (ClassInfo(1, "crack"), ClassInfo(2, "pit"), ClassInfo(3, "water_stain", "impurity"))
KINDS = {"crack": "defect", "pit": "defect", "water_stain": "impurity"}
NAMES = [NOT_A_DEFECT, "crack", "pit"]


def inspected(name: str, score: np.ndarray, instances: np.ndarray, classes: dict, calls: list) -> Inspected:
    """An image whose regions the 'classifier' names as listed in `calls` (class indices)."""
    annotations = Annotations.from_instance_map(instances.astype(np.uint16), classes, CLASSES)
    scored = anomaly.Scored(name, score, float(score.max()), annotations)
    regions = predictions_from_map(score, 0.5)
    assert len(regions) == len(calls)
    probabilities = np.full((len(calls), 3), 0.1, np.float32)
    probabilities[np.arange(len(calls)), calls] = 0.8
    return Inspected(scored, regions, probabilities)


def hand_case() -> list[Inspected]:
    # image a: a crack (id 1) found and named crack; a stain (id 2) flagged and dismissed;
    # a pit (id 3) found but named crack
    score_a = np.zeros((10, 10), np.float32)
    instances_a = np.zeros((10, 10), np.uint16)
    instances_a[1, 1:5], score_a[1, 2:4] = 1, 0.9
    instances_a[5:7, 5:7], score_a[5:7, 5:7] = 2, 0.8
    instances_a[9, 9], score_a[8:10, 8:10] = 3, 0.7
    a = inspected("a", score_a, instances_a, {1: 1, 2: 3, 3: 2}, [1, 0, 1])
    # image b: good, two false alarms, one kept as a pit
    score_b = np.zeros((10, 10), np.float32)
    score_b[0, 0], score_b[5, 5] = 0.9, 0.6
    b = inspected("b", score_b, np.zeros((10, 10), np.uint16), {}, [0, 2])
    # image c: good, nothing flagged
    c = inspected("c", np.zeros((10, 10), np.float32), np.zeros((10, 10), np.uint16), {}, [])
    return [a, b, c]


def test_both_systems_are_scored_by_the_same_rules() -> None:
    result = hybrid_metrics(hand_case(), NAMES, KINDS, k=0, reject=0.5)
    pc, hy = result["patchcore"], result["hybrid"]
    assert pc["recall"] == {"crack": 1.0, "pit": 1.0} and hy["recall"] == {"crack": 1.0, "pit": 1.0}
    assert pc["impurities_flagged"] == {"water_stain": 1.0} and hy["impurities_flagged"] == {
        "water_stain": 0.0
    }
    assert (pc["regions"], pc["false_alarm_regions"], pc["false_alarm_regions_on_impurities"]) == (5, 3, 1)
    assert (hy["regions"], hy["false_alarm_regions"], hy["false_alarm_regions_on_impurities"]) == (3, 1, 0)
    assert pc["region_precision"] == pytest.approx(2 / 5) and hy["region_precision"] == pytest.approx(2 / 3)
    assert (pc["good_images"], pc["good_images_flagged"], hy["good_images_flagged"]) == (2, 0.5, 0.5)
    assert hy["per_class"] == {
        "crack": {"recall_right_class": 1.0, "precision": 0.5, "regions_named": 2},
        "pit": {"recall_right_class": 0.0, "precision": 0.0, "regions_named": 1},
    }
    at_k60 = hybrid_metrics(hand_case(), NAMES, KINDS, k=60, reject=0.5)
    assert at_k60["patchcore"]["recall"]["crack"] == 0.0  # 2 of its 4 pixels: 50% < 60%
    # PatchCore alone is evaluate anomaly's defect-wise recall at the same threshold
    scored = [item.scored for item in hand_case()]
    assert anomaly.anomaly_metrics(scored, 0.5, KINDS)["defect_wise"]["per_class"] == pc["recall"]
    header, rows = table({**result, "k": 0, "seconds_per_image": {"patchcore": 0.5, "classifier": 0.1}})
    assert header == ["metric", "PatchCore alone", "hybrid"]
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name["false-alarm regions"] == [3, 1]
    assert by_name["good images flagged (of 2)"] == [0.5, 0.5]
    assert by_name["seconds per image"] == [0.5, pytest.approx(0.6)]


def alarms(result: dict) -> tuple[int, int, int]:
    return result["regions"], result["false_alarm_regions"], result["false_alarm_regions_on_impurities"]


def test_segmenter_alone_is_scored_by_its_regions_at_the_threshold() -> None:
    # image a: a crack (id 1) covered by one pixel of a region, a pit (id 2) under the threshold,
    # a stain (id 3) flagged, and a region on plain surface
    prob_a = np.zeros((10, 10), np.float32)
    instances_a = np.zeros((10, 10), np.uint16)
    instances_a[1, 1:5], prob_a[0:2, 4:6] = 1, 0.7  # 1 of the crack's 4 pixels: found at k = 0
    instances_a[5:7, 1:3], prob_a[5:7, 1:3] = 2, 0.49  # just under 0.5: missed
    instances_a[8, 8:10], prob_a[8:10, 7] = 3, 0.9  # beside the stain, sharing no pixel with it
    prob_a[7, 8] = 0.9  # joins that column diagonally (8-connected), still off the stain
    prob_a[4, 8] = 0.6  # a lone pixel on plain surface
    a = Annotations.from_instance_map(instances_a, {1: 1, 2: 2, 3: 3}, CLASSES)
    # image b: good, one region; image c: good, nothing above the threshold
    prob_b = np.zeros((10, 10), np.float32)
    prob_b[3:5, 3:5] = 0.95
    good = Annotations.from_instance_map(np.zeros((10, 10), np.uint16), {}, CLASSES)
    images = [
        anomaly.Scored("a", prob_a, 0.9, a),
        anomaly.Scored("b", prob_b, 0.95, good),
        anomaly.Scored("c", np.full((10, 10), 0.3, np.float32), 0.3, good),
    ]
    result = map_alone(images, 0.5, KINDS, k=0)
    assert [len(predictions_from_map(s.score_map, 0.5)) for s in images] == [3, 1, 0]
    assert result["recall"] == {"crack": 1.0, "pit": 0.0} and result["mean_defect_recall"] == 0.5
    assert result["impurities_flagged"] == {"water_stain": 0.0}
    assert alarms(result) == (4, 3, 0)
    assert result["region_precision"] == pytest.approx(1 / 4)
    assert (result["good_images"], result["good_images_flagged"]) == (2, 0.5)
    prob_a[8, 9] = 0.5  # now the region reaches the stain: an alarm on an impurity, the stain flagged
    result = map_alone(images, 0.5, KINDS, k=0)
    assert result["impurities_flagged"] == {"water_stain": 1.0}
    assert alarms(result) == (4, 3, 1)
    nothing = map_alone(images, 0.99, KINDS, k=0)  # no region at all: no region precision
    assert alarms(nothing) == (0, 0, 0) and math.isnan(nothing["region_precision"])
    assert nothing["mean_defect_recall"] == 0.0 and nothing["good_images_flagged"] == 0.0
    assert map_alone(images, 0.45, KINDS, k=0)["recall"] == {"crack": 1.0, "pit": 1.0}


def test_reject_level_keeps_every_val_defect_patchcore_finds() -> None:
    val = hand_case()  # P(not a defect): 0.8 where the classifier says so, else 0.1
    level, source = choose_reject(val, KINDS, k=0)
    assert (level, source) == (
        0.5,
        "0.5, the classifier's verdict (it keeps every val defect PatchCore finds)",
    )
    assert [len(r) for r in kept_regions(val, level)] == [2, 1, 0]  # the stain goes, one alarm stays
    val[0].probabilities[2] = [0.85, 0.1, 0.05]  # the pit now looks like no defect
    level, source = choose_reject(val, KINDS, k=0)
    assert level == float(np.nextafter(np.float32(0.85), np.inf))  # so nothing below it is dismissed
    assert source == "the lowest above 0.5 that keeps every val defect PatchCore alone finds"
    assert [len(r) for r in kept_regions(val, level)] == [3, 2, 0]
    val[0].probabilities[2] = [0.01, 0.98, 0.01]  # a sure pit licenses no level under the verdict's
    assert choose_reject(val, KINDS, k=0)[0] == 0.5
    nothing = [val[2]]  # a val split where PatchCore finds no defect
    assert choose_reject(nothing, KINDS, k=0) == (0.5, "0.5 (PatchCore alone finds no val defect to keep)")


def defect_scene() -> dict:
    scene = copy.deepcopy(TINY_SCENE)
    scene["splits"]["train"] = {"count": 8, "good_fraction": 0.25}
    return scene


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny raster dataset, a coreset of its good train images and a classifier of its crops."""
    base = tmp_path_factory.mktemp("hybrid")
    data = base / "data"
    render_dataset(parse_config(defect_scene()), data, renderer="raster", progress=False)
    config = PatchCoreConfig(image_size=(32, 32), coreset_size=16, epochs=1, holdout=0.25)
    coreset = pretrain_coreset(data, config).save(base / "coreset.safetensors")
    classifier = base / "classifier.pt"
    pretrain_classifier([data], classifier, ClassifierConfig(image_size=32, epochs=1, crops_per_epoch=8))
    return data, coreset, classifier


def test_end_to_end_hybrid_run_writes_its_report(tiny_run, tmp_path: Path) -> None:
    data, coreset, classifier = tiny_run
    out = tmp_path / "hybrid"
    args = ["hybrid", "--coreset", str(coreset), "--classifier", str(classifier), "--data", str(data)]
    result = CliRunner().invoke(evaluate_cli, [*args, "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "| metric | PatchCore alone | hybrid |" in result.output
    html = (out / "report.html").read_text()
    assert "PatchCore alone and the hybrid (test split)" in html and "<img src='data:image/jpeg" in html
    metrics = json.loads((out / "metrics.json").read_text())
    regions = json.loads((out / "regions.json").read_text())
    model = Coreset.load(coreset)
    truth = anomaly.evaluate_predictor(model.predict, data, tmp_path / "anomaly", model.threshold)
    assert metrics["threshold"] == truth["threshold"]
    assert metrics["reject_source"] in (
        "0.5, the classifier's verdict (it keeps every val defect PatchCore finds)",
        "the lowest above 0.5 that keeps every val defect PatchCore alone finds",
        "0.5 (PatchCore alone finds no val defect to keep)",
    )
    assert metrics["reject"] >= 0.5  # val only ever raises the level above the verdict's
    assert metrics["patchcore"]["recall"] == truth["defect_wise"]["per_class"]
    assert metrics["patchcore"]["good_images"] == truth["image"]["good_images"]
    samples = Dataset(data).samples("test")
    maps, _ = model.predict([s.image() for s in samples])
    counts = {
        s.id: len(predictions_from_map(smap, metrics["threshold"]))
        for s, smap in zip(samples, maps, strict=True)
    }
    assert {i: len(r["regions"]) for i, r in regions.items()} == counts
    assert sum(counts.values()) == metrics["patchcore"]["regions"]
    records = [r for image in regions.values() for r in image["regions"]]
    assert sum(r["kept"] for r in records) == metrics["hybrid"]["regions"]
    for record in records:
        assert record["class"] in metrics["classes"] and record["kept"] == (record["class"] != NOT_A_DEFECT)
        assert record["length_mm"] >= record["width_mm"] > 0 and "severity" in record
        assert 0 <= record["defect_probability"] <= 1
    assert metrics["examples"] and all((out / p).is_file() for p in metrics["examples"])


def test_a_classifier_of_other_classes_is_refused(tiny_run, tmp_path: Path) -> None:
    data, coreset, classifier = tiny_run
    scene = defect_scene()
    scene["defects"][1]["name"] = "dent"
    other = tmp_path / "other"
    render_dataset(parse_config(scene), other, renderer="raster", progress=False)
    args = ["hybrid", "--coreset", str(coreset), "--classifier", str(classifier), "--data", str(other)]
    result = CliRunner().invoke(evaluate_cli, [*args, "--out", str(tmp_path / "h"), "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        f"class names: {classifier} has ['scratch', 'pit'], {other} has ['scratch', 'dent']; "
        "every one of the data's must be one of them"
    ) in result.output
    assert not (tmp_path / "h").exists()


def test_segmenter_alone_column_uses_evaluate_segments_threshold(tiny_run, tmp_path: Path) -> None:
    data, coreset, classifier = tiny_run
    weights = tmp_path / "segmenter.pt"
    config = SegmentConfig(image_size=64, epochs=1, crops_per_epoch=8, batch_size=4, val_tiles=4)
    pretrain_segmenter(data, weights, config)
    out = tmp_path / "hybrid"
    args = ["hybrid", "--coreset", str(coreset), "--classifier", str(classifier), "--data", str(data)]
    args += ["--segmenter", str(weights), "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(evaluate_cli, args)
    assert result.exit_code == 0, result.output
    assert "| metric | PatchCore alone | segmenter alone | hybrid |" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    model = Segmenter.load(weights)
    segment = anomaly.evaluate_predictor(model.predict, data, tmp_path / "segment", None)
    assert metrics["segmenter"]["threshold"] == segment["threshold"]
    assert metrics["segmenter"]["recall"] == segment["defect_wise"]["per_class"]
    dataset = Dataset(data)
    test = anomaly.score_split(dataset, "test", model.predict)
    expected = map_alone(test, segment["threshold"], {c.name: c.kind for c in dataset.classes}, k=0)
    assert alarms(metrics["segmenter"]) == alarms(expected)
    assert metrics["seconds_per_image"]["segmenter"] > 0


def test_a_detectors_regions_are_the_pixels_its_detections_cover() -> None:
    mask = np.array([[True, False], [True, True]])
    found = [
        Prediction((1.5, 0.2, 4.0, 3.0), 0.4, 1),  # a box: every pixel it touches (x 1-3, y 0-2)
        Prediction((3, 2, 5, 4), 0.9, 1, mask, (3, 2)),  # a mask: its own pixels only
        Prediction((6, 5, 9, 9), 0.7, 1),  # a box past the image's edge
    ]
    expected = np.zeros((6, 8), np.float32)
    expected[0:3, 1:4] = 0.4
    expected[2:4, 3:5] = np.where(mask, 0.9, expected[2:4, 3:5])  # the higher score where both cover
    expected[5:6, 6:8] = 0.7
    np.testing.assert_array_equal(detection_map(found, (6, 8)), expected)


def test_detector_alone_column_scores_the_detections_by_the_same_rules(tiny_run, tmp_path: Path) -> None:
    from evaluate.detector import predict_maskrcnn
    from train.maskrcnn.config import MaskRCNNConfig
    from train.maskrcnn.model import MaskRCNNModel
    from train.maskrcnn.training import pretrain as pretrain_maskrcnn

    data, coreset, classifier = tiny_run
    weights = tmp_path / "maskrcnn.pt"
    pretrain_maskrcnn(data, weights, MaskRCNNConfig(tile=64, epochs=1, batch_size=4, fpn_channels=32))
    out = tmp_path / "hybrid"
    args = ["hybrid", "--coreset", str(coreset), "--classifier", str(classifier), "--data", str(data)]
    args += ["--detector", str(weights), "--detector-conf", "0.05", "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(evaluate_cli, args)
    assert result.exit_code == 0, result.output
    assert "| metric | PatchCore alone | detector alone | hybrid |" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    dataset = Dataset(data)
    model = MaskRCNNModel.load(weights, "cpu")
    kinds = {c.name: c.kind for c in dataset.classes}
    expected, _ = detector_alone(lambda samples: predict_maskrcnn(model, samples), dataset, kinds, 0, 0.05)
    assert metrics["detector"] == json.loads(json.dumps(expected))
    assert metrics["detector"]["conf"] == 0.05 and metrics["seconds_per_image"]["detector"] > 0
    assert "Detector confidence 0.05." in (out / "report.html").read_text()


def test_hybrid_needs_a_scale_for_imported_data(tmp_path: Path) -> None:
    source = tmp_path / "src" / "MT_Free"
    source.mkdir(parents=True)
    cv2.imwrite(str(source / "a.png"), np.full((16, 16), 90, np.uint8))
    import_dataset(scan("folders", source.parent), tmp_path / "real", fractions=(0.0, 0.0, 1.0))
    with pytest.raises(DataError) as error:
        evaluate_hybrid(None, None, tmp_path / "real", tmp_path / "out")
    assert str(error.value) == (
        f"{tmp_path / 'real'}: its test images record no mm per pixel (imported data?): give --mm-per-pixel"
    )


def test_hybrid_cli_names_a_file_that_is_no_classifier(tiny_run, tmp_path: Path) -> None:
    data, coreset, _ = tiny_run
    args = ["hybrid", "--coreset", str(coreset), "--classifier", str(coreset), "--data", str(data)]
    result = CliRunner().invoke(evaluate_cli, [*args, "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {coreset}: not a classifier weights file (")
    assert not (tmp_path / "x").exists()
