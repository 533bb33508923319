"""LabelMe JSON files (polygon, rectangle and circle shapes in pixels), read into a `Source`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from evaluate.formats.source import (
    ImportFailure,
    LabelReader,
    Labels,
    Source,
    SourceItem,
    Unreadable,
    check_declared_size,
    check_in_image,
    check_names,
    from_masks,
    numbers,
    read_json,
    require_dir,
    sample_id,
    short,
    skip,
    with_lost_note,
)
from synth.annotations import ClassInfo

LABELME_POINTS = {"polygon": (3, None), "rectangle": (2, 2), "circle": (2, 2)}  # (min, max) points


def scan_labelme(src: Path) -> Source:
    """LabelMe JSON files under `src`, each naming its image (imagePath, or embedded imageData).

    Every JSON file is a LabelMe file or a listed skip, checked here: malformed JSON, a shape
    type this importer cannot draw, or a shape without a label or valid points.
    """
    require_dir(src, "a folder of LabelMe JSON files")
    items, names, skipped = [], [], []
    labelled: dict[Path, Path] = {}
    for js in sorted(src.rglob("*.json")):
        try:
            doc = read_json(js)
            if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
                raise Unreadable(f"{js}: not a LabelMe file (expected an object with a 'shapes' list)")
            shapes = [_labelme_shape(s, f"{js}: shapes[{n}]") for n, s in enumerate(doc["shapes"])]
            image, in_json = _labelme_image(doc, js)
        except Unreadable as e:
            skipped.append(skip(js, str(e)))
            continue
        if not in_json and image in labelled:
            raise ImportFailure(f"{labelled[image]} and {js} both label {image}; expected one file per image")
        labelled[image] = js
        for label, _, _ in shapes:
            check_names([label], js)
            names += [label] if label not in names else []
        stratum = shapes[0][0] if shapes else "good"
        reader = _labelme_reader(shapes, js, (doc.get("imageHeight"), doc.get("imageWidth")))
        items.append(
            SourceItem(sample_id(js.relative_to(src)), js if in_json else image, stratum, reader, in_json, js)
        )
    return Source("labelme", src, names, items, skipped)


def _labelme_shape(shape: object, where: str) -> tuple[str, str, np.ndarray]:
    """(label, shape type, points as n x 2) of a LabelMe shape, checked: skipping one shape
    would silently change the image's labels, so a bad shape skips the whole file."""
    if not isinstance(shape, dict):
        raise Unreadable(f"{where}: expected an object, got {short(shape)}")
    kind, label = shape.get("shape_type") or "polygon", shape.get("label")
    if kind not in LABELME_POINTS:
        raise Unreadable(
            f"{where} (label {label!r}) has shape_type {kind!r}; expected one of {', '.join(LABELME_POINTS)}"
        )
    if not isinstance(label, str) or not label.strip():
        raise Unreadable(f"{where}: expected a non-empty 'label', got {short(label)}")
    points = numbers(shape.get("points"), f"{where}: points")
    low, high = LABELME_POINTS[kind]
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < low or (high and len(points) > high):
        raise Unreadable(
            f"{where}: a {kind} needs {low}{'' if high == low else ' or more'} [x, y] points, "
            f"got {short(shape.get('points'))}"
        )
    return label, kind, points


def _labelme_image(doc: dict, js: Path) -> tuple[Path, bool]:
    """The image file a LabelMe document names, or (the JSON, True) when it embeds imageData."""
    path = doc.get("imagePath")
    image = js.parent / path.replace("\\", "/") if isinstance(path, str) and path else None
    if image is not None and image.is_file():
        return image, False
    if isinstance(doc.get("imageData"), str) and doc["imageData"]:
        return js, True
    raise Unreadable(f"{js}: its imagePath {path!r} is not a file, and it has no imageData")


def _labelme_reader(shapes: list[tuple[str, str, np.ndarray]], js: Path, declared: tuple) -> LabelReader:
    """LabelMe points are pixel coordinates; shapes are filled including their outline."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        check_declared_size(str(js), declared, size)
        masks = []
        for n, (label, kind, pts) in enumerate(shapes):
            check_in_image(pts.ravel(), size, f"{js}: shapes[{n}]")
            mask = np.zeros(size, np.uint8)
            if kind == "circle":
                centre = tuple(int(round(v)) for v in pts[0])
                cv2.circle(mask, centre, int(round(float(np.hypot(*(pts[1] - pts[0]))))), 1, -1)
            else:
                if kind == "rectangle":
                    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
                    pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
                ring = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
                cv2.fillPoly(mask, [ring], 1)
                cv2.polylines(mask, [ring], True, 1)
            masks.append((label, mask.astype(bool)))
        return with_lost_note(from_masks(masks, size, classes), len(masks), js)

    return read
