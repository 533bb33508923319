"""Evaluate a YOLO detector / segmenter on a canonical dataset: `evaluate detector`.

Boxes are compared (the COCO rule) on the test split: mAP50, mAP50-95, AP by instance size
from all predictions down to a low confidence; recall, miss rate and false alarms on good
images at the working confidence `--conf`.
"""

from __future__ import annotations

from pathlib import Path

import click
import cv2
from tqdm import tqdm

from evaluate import metrics as m
from evaluate.plots import FALSE_ALARM, MISS, TRUE_POSITIVE, save_rgb
from evaluate.report import Section, markdown_table, write_html
from synth.annotations import Prediction, predictions_from_ultralytics
from synth.dataset import Dataset, Sample
from synth.errors import DataError
from synth.runs import default_out
from synth.writers import atomic_write_json

# Predictions below this confidence are dropped before mAP (as ultralytics' own val does).
MAP_CONF = 0.001
EXAMPLES = 8


def truths_of(dataset: Dataset, samples: list[Sample]) -> m.Truths:
    """Every sample's labelled instances, read through its `Annotations`."""
    return {s.id: s.annotations(dataset.classes).instances for s in samples}


def predict(model, samples: list[Sample], imgsz: int, batch: int = 8) -> m.Predictions:
    """YOLO predictions for every sample, in canonical class ids (YOLO class + 1)."""
    preds: dict[str, list[Prediction]] = {}
    for start in tqdm(range(0, len(samples), batch), desc="detecting", leave=False):
        chunk = samples[start : start + batch]
        results = model.predict([str(s.image_path) for s in chunk], imgsz=imgsz, conf=MAP_CONF, verbose=False)
        for sample, result in zip(chunk, results, strict=True):
            preds[sample.id] = predictions_from_ultralytics(result, class_offset=1)
    return preds


def draw_examples(
    samples: list[Sample], truths: m.Truths, preds: m.Predictions, conf: float, out: Path
) -> list[tuple[str, Path]]:
    """Images with found (green), missed (red) truths and false alarms (yellow) at `conf`."""
    drawn: dict[str, list[tuple[tuple[float, ...], tuple[int, int, int]]]] = {}
    for image, ts in truths.items():
        kept = [p for p in preds.get(image, ()) if p.score >= conf]
        found_t, found_p = m.match_detections(ts, kept)
        boxes = [(t.xyxy, TRUE_POSITIVE if i in found_t else MISS) for i, t in enumerate(ts)]
        boxes += [(p.box, FALSE_ALARM) for i, p in enumerate(kept) if i not in found_p]
        if boxes:
            drawn[image] = boxes
    interesting = sorted(drawn, key=lambda k: -sum(c != TRUE_POSITIVE for _, c in drawn[k]))
    lookup = {s.id: s for s in samples}
    figures = []
    for image_id in interesting[:EXAMPLES]:
        image = lookup[image_id].image().copy()
        for box, colour in drawn[image_id]:
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), colour, 2)
        figures.append((image_id, save_rgb(image, out / "examples" / f"{image_id}.png")))
    return figures


@click.command("detector")
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder [runs/detector/<weights stem>].",
)
@click.option(
    "--conf",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Working confidence for recall, miss rate and false alarms.",
)
@click.option("--imgsz", default=640, show_default=True, type=int)
def detector(weights: Path, data: Path, out: Path | None, conf: float, imgsz: int) -> None:
    """Evaluate YOLO weights on the test split: metrics JSON, examples and an HTML report."""
    from train.yolo.offline import import_ultralytics, load_yolo

    out = out or default_out("detector", weights.stem)
    dataset = Dataset(data)
    samples = dataset.samples("test")
    if not samples:
        raise DataError(f"{data}: the test split is empty")
    import_ultralytics(out)
    model = load_yolo(weights)
    truths = truths_of(dataset, samples)
    preds = predict(model, samples, imgsz)
    names = {c.id: c.name for c in dataset.classes}
    impurities = {c.id for c in dataset.classes if c.kind == "impurity"}
    good = [s.id for s in samples if s.good]
    result = m.detection_metrics(truths, preds, names, good, conf, impurities)
    result["kinds"] = {c.name: c.kind for c in dataset.classes}
    figures = draw_examples(samples, truths, preds, conf, out)
    atomic_write_json(out / "metrics.json", result)
    rows = [[k, result[k]] for k in ("map50", "map50_95", "ap_small", "ap_medium", "ap_large")]
    rows += [[f"recall {n}", v["recall"]] for n, v in result["per_class"].items()]
    rows += [["false alarms on good images", result["false_alarms_on_good"]]]
    legend = "Boxes: green = found, red = missed, yellow = false alarm (at the working confidence)."
    write_html(
        out / "report.html",
        f"{weights.name} on {data}",
        [Section("metrics", table=(["metric", "value"], rows)), Section("examples", legend, images=figures)],
    )
    click.echo(markdown_table(["metric", "value"], rows))
    click.echo(f"wrote {out / 'metrics.json'} and {out / 'report.html'}")
