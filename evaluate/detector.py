"""Evaluate a detector / instance segmenter on a canonical dataset: `evaluate detector`.

YOLO weights (train/yolo) or Mask R-CNN weights (train/maskrcnn). Boxes are compared (the COCO
rule) on the test split: mAP50, mAP50-95, AP by instance size from all predictions down to a
low confidence; for models that predict masks the same figures for the masks (COCO segm, from
the dataset's exact instance masks); recall, miss rate and false alarms on good images at the
working confidence `--conf`. Weights trained on tiles infer on the same tiles, merged across
them (synth.tiles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import cv2
from tqdm import tqdm

from evaluate import metrics as m
from evaluate.plots import FALSE_ALARM, MISS, TRUE_POSITIVE, save_rgb
from evaluate.report import Section, markdown_table, write_html
from synth.annotations import Annotations, Prediction, predictions_from_ultralytics
from synth.dataset import Dataset, Sample, require_classes
from synth.errors import DataError
from synth.outputs import OutputPath
from synth.runs import default_out
from synth.tiles import TileDetector, detect_tiled
from synth.writers import atomic_write_json
from train.devices import device_option
from train.options import Finite, image_size

# Predictions below this confidence are dropped before mAP (as ultralytics' own val does).
MAP_CONF = 0.001
# The working confidence of recall, misses and false alarms (`--conf`), wherever a detector is scored.
WORKING_CONF = 0.25
EXAMPLES = 8


def annotations_of(dataset: Dataset, samples: list[Sample]) -> dict[str, Annotations]:
    """Every sample's labels (instances and their exact masks)."""
    return {s.id: s.annotations(dataset.classes) for s in samples}


def truths_of(dataset: Dataset, samples: list[Sample]) -> m.Truths:
    """Every sample's labelled instances, read through its `Annotations`."""
    return {k: a.instances for k, a in annotations_of(dataset, samples).items()}


def predict_tiled(
    samples: list[Sample],
    detector: TileDetector,
    tile: int,
    overlap: float,
    bgr: bool = False,
    batch: int = 8,
) -> m.Predictions:
    """Every sample's predictions from `detector` run on its tiles and merged across them;
    `bgr` for detectors that take OpenCV's channel order (ultralytics)."""
    preds: dict[str, list[Prediction]] = {}
    for sample in tqdm(samples, desc="detecting", leave=False):
        image = sample.image()
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if bgr else image
        preds[sample.id] = detect_tiled(image, detector, tile, overlap, batch)
    return preds


def predict(model, samples: list[Sample], imgsz: int | None = None, batch: int = 8) -> m.Predictions:
    """YOLO predictions for every sample, in canonical class ids (YOLO class + 1), with masks
    in image pixels for a segment model. Weights trained on tiles (`train ... yolo --tile`)
    predict on the same tiles; `imgsz` defaults to the size the weights were trained at."""
    from evaluate.predict import yolo_tile_detector
    from train.yolo.training import weights_tiling

    imgsz = imgsz or int((model.ckpt or {}).get("train_args", {}).get("imgsz", 640))
    tiling = weights_tiling(model)
    if tiling is not None:
        detector = yolo_tile_detector(model, imgsz, MAP_CONF, 0.7, None, class_offset=1)
        return predict_tiled(samples, detector, tiling.tile, tiling.overlap, bgr=True, batch=batch)
    preds: dict[str, list[Prediction]] = {}
    for start in tqdm(range(0, len(samples), batch), desc="detecting", leave=False):
        chunk = samples[start : start + batch]
        paths = [str(s.image_path) for s in chunk]
        results = model.predict(paths, imgsz=imgsz, conf=MAP_CONF, retina_masks=True, verbose=False)
        for sample, result in zip(chunk, results, strict=True):
            preds[sample.id] = predictions_from_ultralytics(result, class_offset=1)
    return preds


def predict_maskrcnn(model, samples: list[Sample]) -> m.Predictions:
    """Mask R-CNN predictions (canonical class ids, masks) on the weights' own tiles."""
    tiling = model.config.tiling

    def detector(tiles):
        return model.detect_tiles(tiles, MAP_CONF)

    return predict_tiled(samples, detector, tiling.tile, tiling.overlap, batch=4)


def predict_with(model: Any, kind: str, samples: list[Sample], imgsz: int | None = None) -> m.Predictions:
    """The predictions of a model `load_detector` gave, by its kind."""
    return predict_maskrcnn(model, samples) if kind == "maskrcnn" else predict(model, samples, imgsz)


def load_detector(weights: Path, data: Path, out: Path, device: str) -> tuple[Any, str, bool]:
    """The model in `weights` (Mask R-CNN or YOLO), its kind, and whether it predicts masks;
    refused unless its classes are those of the dataset at `data`."""
    from train.maskrcnn.model import MaskRCNNModel, is_maskrcnn_file
    from train.yolo.offline import import_ultralytics, load_yolo
    from train.yolo.training import weights_names

    classes = [c.name for c in Dataset(data).classes]
    if is_maskrcnn_file(weights):
        model = MaskRCNNModel.load(weights, device)
        require_classes((weights, [c.name for c in model.classes]), (data, classes))
        return model, "maskrcnn", True
    import_ultralytics(out)
    model = load_yolo(weights)
    require_classes((weights, weights_names(model)), (data, classes))
    return model, "yolo", model.task == "segment"


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
    type=OutputPath(folder=True),
    default=None,
    help="Output folder [runs/detector/<weights stem>].",
)
@click.option(
    "--conf",
    default=WORKING_CONF,
    show_default=True,
    type=Finite(0, 1),
    help="Working confidence for recall, miss rate and false alarms.",
)
@click.option(
    "--imgsz",
    type=image_size(32),
    help="YOLO input size [the size the weights were trained at].",
)
@click.option(
    "--split",
    type=click.Choice(["test", "val"]),
    default="test",
    show_default=True,
    help="Split scored: val to choose a recipe, test to report it.",
)
@device_option
def detector(
    weights: Path, data: Path, out: Path | None, conf: float, imgsz: int | None, split: str, device: str
) -> None:
    """Evaluate YOLO or Mask R-CNN weights on the test split (or val, to choose between
    recipes without looking at test): metrics JSON, examples and an HTML report."""
    out = out or default_out("detector", weights.stem)
    dataset = Dataset(data)
    samples = dataset.samples(split)
    if not samples:
        raise DataError(f"{data}: the {split} split is empty")
    model, kind, with_masks = load_detector(weights, data, out, device)
    names = {c.id: c.name for c in dataset.classes}
    annotations = annotations_of(dataset, samples)
    truths = {k: a.instances for k, a in annotations.items()}
    preds = predict_with(model, kind, samples, imgsz)
    impurities = {c.id for c in dataset.classes if c.kind == "impurity"}
    good = [s.id for s in samples if s.good]
    masks = annotations if with_masks else None
    result = m.detection_metrics(truths, preds, names, good, conf, impurities, masks)
    result["kinds"] = {c.name: c.kind for c in dataset.classes}
    result["model"] = kind
    result["split"] = split
    figures = draw_examples(samples, truths, preds, conf, out)
    atomic_write_json(out / "metrics.json", result)
    keys = ["map50", "map50_95", "ap_small", "ap_medium", "ap_large"]
    keys += [f"mask_{k}" for k in keys] if with_masks else []
    rows = [[k, result[k]] for k in keys]
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
