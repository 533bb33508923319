"""Detector evaluation pieces that need no trained model: truth boxes and example drawing."""

import numpy as np
from PIL import Image

from evaluate import detector, importers
from evaluate.plots import FALSE_ALARM, MISS, TRUE_POSITIVE
from synth.annotations import Prediction
from synth.dataset import Dataset


def test_truth_boxes_and_examples(tmp_path):
    src = tmp_path / "yolo"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.zeros((20, 40), np.uint8)).save(src / "images" / f"{name}.png")
    (src / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n")  # box x 15..25, y 5..15
    importers.import_dataset(importers.scan("yolo", src), tmp_path / "ds", (1.0, 0.0, 0.0))
    dataset = Dataset(tmp_path / "ds")
    samples = dataset.samples("train")
    truths = detector.truths_of(dataset, samples)
    assert {k: [(t.class_id, t.xyxy) for t in ts] for k, ts in truths.items()} == {
        "a": [(1, (15, 5, 25, 15))],
        "b": [],
    }
    preds = {"b": [Prediction((0, 0, 4, 4), 0.9, 1)], "a": [Prediction((15, 5, 25, 15), 0.1, 1)]}
    figures = detector.draw_examples(samples, truths, preds, conf=0.5, out=tmp_path / "out")
    drawn = {name: np.asarray(Image.open(path)) for name, path in figures}
    assert drawn["a"][5, 15].tolist() == list(MISS)  # its prediction is below conf
    assert drawn["b"][0, 0].tolist() == list(FALSE_ALARM)
    assert TRUE_POSITIVE not in [tuple(p) for img in drawn.values() for p in img.reshape(-1, 3)]
