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
from synth.dataset import Dataset, DatasetError, Sample
from synth.writers import atomic_write_json

# Predictions below this confidence are dropped before mAP (as ultralytics' own val does).
MAP_CONF = 0.001
EXAMPLES = 8


def truth_boxes(sample: Sample) -> list[m.Box]:
    """The labelled instances of a sample as boxes (bbox x, y, w, h -> x0, y0, x1, y1)."""
    boxes = []
    for inst in sample.meta["instances"]:
        x, y, w, h = inst["bbox"]
        boxes.append(m.Box(sample.id, inst["class_id"], (x, y, x + w, y + h)))
    return boxes


def predict_boxes(model, samples: list[Sample], imgsz: int, batch: int = 8) -> list[m.Box]:
    """YOLO predictions (class = YOLO class + 1, the canonical class id) for every sample."""
    boxes = []
    for start in tqdm(range(0, len(samples), batch), desc="detecting", leave=False):
        chunk = samples[start : start + batch]
        results = model.predict([str(s.image_path) for s in chunk], imgsz=imgsz, conf=MAP_CONF, verbose=False)
        for sample, result in zip(chunk, results, strict=True):
            for xyxy, score, cls in zip(
                result.boxes.xyxy.tolist(),
                result.boxes.conf.tolist(),
                result.boxes.cls.tolist(),
                strict=True,
            ):
                boxes.append(m.Box(sample.id, int(cls) + 1, tuple(xyxy), float(score)))
    return boxes


def draw_examples(
    samples: list[Sample], truths: list[m.Box], preds: list[m.Box], conf: float, out: Path
) -> list[tuple[str, Path]]:
    """Images with found (green), missed (red) truths and false alarms (yellow) at `conf`."""
    kept = [p for p in preds if p.score >= conf]
    found_t, found_p = m.match_detections(truths, kept)
    by_image: dict[str, list[tuple[m.Box, tuple[int, int, int]]]] = {}
    for i, t in enumerate(truths):
        by_image.setdefault(t.image, []).append((t, TRUE_POSITIVE if i in found_t else MISS))
    for i, p in enumerate(kept):
        if i not in found_p:
            by_image.setdefault(p.image, []).append((p, FALSE_ALARM))
    interesting = sorted(by_image, key=lambda k: -sum(c != TRUE_POSITIVE for _, c in by_image[k]))
    lookup = {s.id: s for s in samples}
    figures = []
    for image_id in interesting[:EXAMPLES]:
        image = lookup[image_id].image().copy()
        for box, colour in by_image[image_id]:
            x0, y0, x1, y1 = (int(round(v)) for v in box.xyxy)
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
    help="Output folder (default: <weights stem>_eval beside the weights).",
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

    out = out or weights.with_name(f"{weights.stem}_eval")
    try:
        dataset = Dataset(data)
    except DatasetError as e:
        raise click.ClickException(str(e)) from None
    samples = dataset.samples("test")
    if not samples:
        raise click.ClickException(f"{data}: the test split is empty")
    import_ultralytics(out)
    model = load_yolo(weights)
    truths = [b for s in samples for b in truth_boxes(s)]
    preds = predict_boxes(model, samples, imgsz)
    names = {c.id: c.name for c in dataset.classes}
    impurities = {c.id for c in dataset.classes if c.kind == "impurity"}
    result = m.detection_metrics(
        truths, preds, [s.id for s in samples], names, [s.id for s in samples if s.good], conf, impurities
    )
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
