"""The anomaly evaluation on hand-built score maps: threshold choice, metrics, examples."""

import numpy as np
import pytest

from evaluate import anomaly
from evaluate.plots import FALSE_ALARM, MISS, TRUE_POSITIVE, overlay
from synth.annotations import Annotations, ClassInfo

CLASSES = (ClassInfo(1, "crack", "defect"), ClassInfo(2, "water_stain", "impurity"))


def _scored(name, score_map, instance_map, classes):
    ids = {c.name: c.id for c in CLASSES}
    annotations = Annotations.from_instance_map(
        np.asarray(instance_map, np.uint16), {i: ids[c] for i, c in classes.items()}, CLASSES
    )
    return anomaly.Scored(name, np.asarray(score_map, np.float32), float(np.max(score_map)), annotations)


KINDS = {"crack": "defect", "water_stain": "impurity"}


def _test_split():
    # image a: a 2-px crack (found at 0.5 on one pixel) and a 1-px stain (flagged)
    a = _scored("a", [[0.9, 0.1, 0.6]], [[1, 1, 2]], {1: "crack", 2: "water_stain"})
    # image b: good, one false alarm pixel
    b = _scored("b", [[0.1, 0.7, 0.2]], [[0, 0, 0]], {})
    return [a, b]


def test_metrics_at_threshold_hand_case():
    r = anomaly.anomaly_metrics(_test_split(), threshold=0.5, kinds=KINDS, k=0)
    # crack pixels: 0.9 (tp), 0.1 (fn); negatives flagged: stain 0.6, good 0.7 -> fp 2
    assert r["pixel"]["precision"] == pytest.approx(1 / 3)
    assert r["pixel"]["recall"] == 0.5
    assert r["pixel"]["f1"] == pytest.approx(0.4)
    assert r["defect_wise"]["per_class"] == {"crack": 1.0}
    assert r["defect_wise"]["mean_defect_recall"] == 1.0
    assert r["impurity_recall"] == {"water_stain": 1.0}
    assert r["image"]["auroc"] == 1.0  # defective image max 0.9 > good image max 0.7
    assert r["image"]["good_flagged_rate"] == 1.0
    assert r["instances"] == {"crack": 1, "water_stain": 1}
    at_k60 = anomaly.anomaly_metrics(_test_split(), threshold=0.5, kinds=KINDS, k=60)
    assert at_k60["defect_wise"]["per_class"] == {"crack": 0.0}  # 50% covered < 60%


def test_nothing_to_find_and_nothing_flagged_is_undefined_with_a_reason_never_1(tmp_path):
    import json

    from evaluate.experiments.tables import write_outputs
    from evaluate.report import markdown_table
    from synth.writers import atomic_write_json

    good = [_scored("b", [[0.1, 0.7, 0.2]], [[0, 0, 0]], {}), _scored("c", [[0.3]], [[0]], {})]
    r = anomaly.anomaly_metrics(good, threshold=0.8, kinds=KINDS)
    assert all(np.isnan(r["pixel"][key]) for key in ("precision", "recall", "f1", "iou"))
    r["threshold_source"] = "the model's threshold"
    r["warnings"] = anomaly.undefined_warnings(r) + anomaly.operating_point_warnings(r)
    assert r["warnings"] == [
        "no defective image in the test split: pixel recall, F1 and IoU are undefined",
        "the threshold flags no pixel of the test split: pixel precision is undefined",
    ]
    table = markdown_table(*anomaly.summary_rows(r))
    assert "| pixel precision | – |" in table and "| pixel F1 | – |" in table and "1.000" not in table
    atomic_write_json(tmp_path / "metrics.json", r)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["pixel"]["f1"] is None and stored["pixel"]["precision"] is None

    # a domain-gap cell read back from its cache: – in the table, the reason below it
    cell = {**stored, "scenario": "real_only", "real_good_images": 2, "cell": "real_only", "cell_dir": "c"}
    write_outputs([{**cell, "figures": {}}], [], [], KINDS, {}, tmp_path, "gap", 1.0)
    md = (tmp_path / "table.md").read_text()
    assert "| real_only | 2 | – | – | – |" in md and "1.000" not in md
    assert "no defective image in the test split: pixel recall, F1 and IoU are undefined." in md
    assert json.loads((tmp_path / "table.json").read_text())["rows"][0][2:5] == [None, None, None]


def test_threshold_from_validation_or_fallbacks():
    val = _test_split()
    t, source = anomaly.choose_threshold(val, fallback=0.3)
    assert t == pytest.approx(0.9) and source.startswith("max pixel F1")
    good_only = [val[1]]
    assert anomaly.choose_threshold(good_only, fallback=0.3)[0] == 0.3
    t, source = anomaly.choose_threshold(good_only, fallback=None)
    assert t == np.nextafter(0.7, np.inf) and "good validation" in source


def test_pick_examples_puts_each_image_under_one_true_caption():
    picked = anomaly.pick_examples(_test_split(), threshold=0.5)
    assert [s.id for s in picked["found"]] == ["a"]  # its one crack is found (k = 0)
    assert picked["missed"] == []  # although one crack pixel is not flagged
    assert [s.id for s in picked["false_alarm"]] == ["b"]  # good and flagged; "a" is not good
    strict = anomaly.pick_examples(_test_split(), threshold=0.5, k=60)
    assert [s.id for s in strict["missed"]] == ["a"] and strict["found"] == []


def test_a_threshold_that_flags_most_good_images_is_called_out():
    result = anomaly.anomaly_metrics(_test_split(), threshold=0.5, kinds=KINDS)
    result["threshold_source"] = "max pixel F1 on the validation split"
    result["model_threshold"] = anomaly.anomaly_metrics(_test_split(), threshold=0.8, kinds=KINDS)
    (warning,) = anomaly.operating_point_warnings(result)
    assert "flags 100% of the good test images" in warning
    assert "model's own threshold 0.8" in warning and "0% are flagged" in warning
    header, rows = anomaly.summary_rows(result)
    assert header[1:] == ["value (chosen threshold)", "value (model's own threshold)"]
    assert ["good images flagged", 1.0, 0.0] in rows
    quiet = anomaly.anomaly_metrics(_test_split(), threshold=0.8, kinds=KINDS)
    quiet["threshold_source"] = "x"
    assert anomaly.operating_point_warnings(quiet) == []


def test_overlay_colours():
    image = np.zeros((1, 4, 3), np.uint8)
    pred = np.array([[1, 0, 1, 0]], bool)
    truth = np.array([[1, 1, 0, 0]], bool)
    out = overlay(image, pred, truth, alpha=1.0)
    assert out[0].tolist() == [list(TRUE_POSITIVE), list(MISS), list(FALSE_ALARM), [0, 0, 0]]
