"""`evaluate predict`: tiled YOLO inference with sizes in mm and a severity score per detection.

Writes, per image, `<stem>.json` (every detection with its box, mask outline, oriented length and
width in mm, area in mm², local contrast, location weight and severity) and `<stem>.png` (an
overlay), so that an inspector can check each number against the picture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import cv2
import numpy as np

from evaluate.severity import SeverityModel, load_severity, measure
from synth.annotations import Prediction, predictions_from_ultralytics
from synth.errors import DataError
from synth.images import IMAGE_SUFFIXES, is_image, read_image
from synth.outputs import OutputPath
from synth.runs import default_out
from synth.tiles import TileDetector, detect_tiled
from train.devices import device_option
from train.options import Finite, image_size
from train.yolo.offline import import_ultralytics, load_yolo

PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207)]
PALETTE += [(10, 249, 72), (23, 204, 146), (134, 219, 61), (187, 212, 0), (168, 153, 44)]
# Tiles of weights that do not say how they were trained.
DEFAULT_TILE, DEFAULT_OVERLAP = 1024, 0.35


def yolo_tile_detector(
    model: Any, imgsz: int, conf: float, iou: float, device: str | None, class_offset: int = 0
) -> TileDetector:
    """Wrap an ultralytics YOLO model as a detector of tile-local predictions (YOLO class ids
    plus `class_offset`; 1 gives a canonical dataset's ids). Tiles are BGR arrays."""

    def detect(tiles: list[np.ndarray]) -> list[list[Prediction]]:
        results = model.predict(
            tiles, imgsz=imgsz, conf=conf, iou=iou, device=device, retina_masks=True, verbose=False
        )
        return [predictions_from_ultralytics(result, class_offset) for result in results]

    return detect


def find_images(source: Path) -> list[Path]:
    """One image, or the images directly in a folder, sorted."""
    if source.is_file():
        return [source]
    images = sorted(p for p in source.iterdir() if is_image(p))
    if not images:
        raise DataError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def _outlines(detection: Prediction) -> list[list[list[int]]] | None:
    """Mask outlines as polygons in image pixels (None for a box-only detection)."""
    if detection.mask is None:
        return None
    contours, _ = cv2.findContours(
        detection.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return [(c.reshape(-1, 2) + detection.mask_origin).tolist() for c in contours]


def describe(
    image: np.ndarray,
    detections: list[Prediction],
    names: dict[int, str],
    mm_per_pixel: float,
    severity: SeverityModel,
    weight_map: np.ndarray | None = None,
) -> tuple[list[dict[str, Any]], list[Prediction]]:
    """The JSON records of an image's detections and the detections, most severe first."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    records = []
    for d in detections:
        m = measure(gray, d.box, mm_per_pixel, d.mask, d.mask_origin, weight_map)
        name = names.get(d.class_id, str(d.class_id))
        records.append(
            {
                "class_id": d.class_id,
                "class": name,
                "score": round(d.score, 4),
                "box": [round(v, 2) for v in d.box],
                "polygons": _outlines(d),
                **m.to_dict(),
                "severity": severity.score(name, m),
            }
        )
    order = sorted(range(len(records)), key=lambda i: -records[i]["severity"])
    return [records[i] for i in order], [detections[i] for i in order]


def draw_overlay(
    image: np.ndarray, records: list[dict[str, Any]], detections: list[Prediction]
) -> np.ndarray:
    """Masks tinted, boxes drawn, each labelled with class, score and severity."""
    overlay = image.copy()
    for record, d in zip(records, detections, strict=True):
        colour = PALETTE[d.class_id % len(PALETTE)]
        if d.mask is not None:
            x, y = d.mask_origin
            region = overlay[y : y + d.mask.shape[0], x : x + d.mask.shape[1]]
            region[d.mask] = (0.55 * region[d.mask] + 0.45 * np.array(colour)).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in d.box)
        cv2.rectangle(overlay, (x0, y0), (x1, y1), colour, 1)
        label = f"{record['class']} {d.score:.2f} S={record['severity']:.1f}"
        cv2.putText(overlay, label, (x0, max(y0 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    return overlay


def load_weight_map(path: Path | None, width: int, height: int) -> np.ndarray | None:
    """A grey image (0 = harmless zone, 255 = critical), scaled to [0, 1] and to the image size."""
    if path is None:
        return None
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise DataError(f"--weight-map {path}: not a readable image")
    if grey.shape != (height, width):
        grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_LINEAR)
    return grey.astype(np.float32) / 255.0


def predict_images(
    weights: Path,
    source: Path,
    out_dir: Path,
    mm_per_pixel: float,
    tile: int | None = None,
    overlap: float | None = None,
    conf: float = 0.25,
    iou: float = 0.5,
    imgsz: int | None = None,
    device: str | None = None,
    batch: int = 8,
    severity_path: Path | None = None,
    weight_map_path: Path | None = None,
) -> list[Path]:
    """Predict every image of `source` tile by tile; return the JSON files written.

    `tile` and `overlap` default to the tiling the weights were trained with (stamped in them by
    `train ... yolo --tile`), else to 1024 px and 0.35.
    """
    from train.yolo.training import weights_tiling

    images = find_images(source)
    severity = load_severity(severity_path)
    import_ultralytics(out_dir)
    model = load_yolo(weights)
    trained = weights_tiling(model)
    tile = tile or (trained.tile if trained else DEFAULT_TILE)
    overlap = overlap if overlap is not None else trained.overlap if trained else DEFAULT_OVERLAP
    detector = yolo_tile_detector(model, imgsz or tile, conf, iou, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in images:
        image = cv2.cvtColor(read_image(path), cv2.COLOR_RGB2BGR)  # ultralytics takes BGR arrays
        height, width = image.shape[:2]
        found = detect_tiled(image, detector, tile, overlap, batch, iou)
        weight_map = load_weight_map(weight_map_path, width, height)
        records, ordered = describe(image, found, model.names, mm_per_pixel, severity, weight_map)
        report = {
            "image": str(path.resolve()),
            "width": width,
            "height": height,
            "mm_per_pixel": mm_per_pixel,
            "tile": tile,
            "overlap": overlap,
            "weights": str(Path(weights).resolve()),
            "detections": records,
        }
        json_path = out_dir / f"{path.stem}.json"
        json_path.write_text(json.dumps(report, indent=2))
        cv2.imwrite(str(out_dir / f"{path.stem}.png"), draw_overlay(image, records, ordered))
        written.append(json_path)
    return written


@click.command("predict")
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--source",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="An image or a folder of images.",
)
@click.option("--out", type=OutputPath(folder=True), help="Output folder [runs/predict/<time>].")
@click.option("--mm-per-pixel", required=True, type=Finite(min=0, min_open=True))
@click.option(
    "--tile",
    type=click.IntRange(min=32),
    help="Tile size [the weights' training tile, else 1024].",
)
@click.option(
    "--overlap",
    type=Finite(0, 1, max_open=True),
    help="Share of a tile its neighbour sees [the weights' training overlap, else 0.35].",
)
@click.option("--conf", default=0.25, show_default=True, type=Finite(0, 1))
@click.option(
    "--iou",
    default=0.5,
    show_default=True,
    type=Finite(0, 1),
    help="NMS IoU within and across tiles.",
)
@click.option("--imgsz", type=image_size(32), help="Network input size [the tile size: native resolution].")
@device_option
@click.option(
    "--batch", default=8, show_default=True, type=click.IntRange(min=1), help="Tiles per forward pass."
)
@click.option(
    "--severity",
    "severity_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Severity coefficients YAML [evaluate/severity.yaml].",
)
@click.option(
    "--weight-map",
    "weight_map_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Grey image of location weights (255 = critical zone) [1 everywhere].",
)
def predict(out: Path | None, **options: Any) -> None:
    """Tiled inference over large images: detections, sizes in mm, severity, overlays."""
    out = out or default_out("predict")
    try:
        written = predict_images(out_dir=out, **options)
    except ValueError as error:  # a bad severity file
        raise click.ClickException(str(error)) from error
    click.echo(f"{len(written)} image(s) -> {out}")
