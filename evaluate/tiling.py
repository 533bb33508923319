"""Tiled inference over large images: exact tile grids and merging detections across tiles.

Small defects vanish when a 5000 px image is resized to the network's input, so the image is cut
into overlapping tiles at native resolution. A defect cut by a tile border appears once whole (in
a neighbouring tile, when the overlap is larger than the defect) and once truncated, or only as
truncated fragments (when it is larger than the overlap); merging keeps the whole detection, or
the union of the fragments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from synth.annotations import Prediction
from synth.tiles import Tile, tile_grid

TileDetector = Callable[[list[np.ndarray]], list[list[Prediction]]]


def to_image(detection: Prediction, tile: Tile, width: int, height: int, margin: float = 2.0) -> Prediction:
    """Shift a tile-local detection into image pixels and flag it when a tile edge cuts it."""
    x0, y0, x1, y1 = detection.box
    truncated = (
        (tile.x0 > 0 and x0 <= margin)
        or (tile.y0 > 0 and y0 <= margin)
        or (tile.x1 < width and x1 >= tile.x1 - tile.x0 - margin)
        or (tile.y1 < height and y1 >= tile.y1 - tile.y0 - margin)
    )
    ox, oy = detection.mask_origin
    return replace(
        detection,
        box=(x0 + tile.x0, y0 + tile.y0, x1 + tile.x0, y1 + tile.y0),
        mask_origin=(ox + tile.x0, oy + tile.y0),
        truncated=bool(truncated),
    )


def _overlap_of_smaller(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection area over the smaller box's area (1 when one box holds the other)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return max(w, 0.0) * max(h, 0.0) / smaller if smaller > 0 else 0.0


def _union(a: Prediction, b: Prediction) -> Prediction:
    """One detection covering both: union box, best score, OR of the masks."""
    box = (min(a.box[0], b.box[0]), min(a.box[1], b.box[1]))
    box += (max(a.box[2], b.box[2]), max(a.box[3], b.box[3]))
    if a.mask is None or b.mask is None:  # boxes only (a detect model)
        return Prediction(box, max(a.score, b.score), a.class_id)
    x0, y0 = min(a.mask_origin[0], b.mask_origin[0]), min(a.mask_origin[1], b.mask_origin[1])
    x1 = max(a.mask_origin[0] + a.mask.shape[1], b.mask_origin[0] + b.mask.shape[1])
    y1 = max(a.mask_origin[1] + a.mask.shape[0], b.mask_origin[1] + b.mask.shape[0])
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    for part in (a, b):
        px, py = part.mask_origin[0] - x0, part.mask_origin[1] - y0
        mask[py : py + part.mask.shape[0], px : px + part.mask.shape[1]] |= part.mask
    return Prediction(box, max(a.score, b.score), a.class_id, mask, (x0, y0))


def _nms(detections: list[Prediction], iou_threshold: float) -> list[Prediction]:
    """Class-wise NMS, best score first."""
    if not detections:
        return []
    import torch  # imported on use, so that `evaluate --help` starts in well under a second
    from torchvision.ops import batched_nms

    boxes = torch.tensor([d.box for d in detections], dtype=torch.float32)
    scores = torch.tensor([d.score for d in detections], dtype=torch.float32)
    classes = torch.tensor([d.class_id for d in detections])
    return [detections[i] for i in batched_nms(boxes, scores, classes, iou_threshold).tolist()]


def merge_detections(
    detections: list[Prediction], iou_threshold: float = 0.5, fragment_overlap: float = 0.2
) -> list[Prediction]:
    """Merge detections from overlapping tiles (in image pixels) into one per defect.

    Whole detections go through class-wise NMS. A truncated one that lies mostly
    (`fragment_overlap` of its box) inside a kept whole detection of its class is a fragment of it
    and is dropped; the remaining fragments of a class that overlap each other are joined into
    their union (a defect larger than the tile overlap).
    """
    whole = _nms([d for d in detections if not d.truncated], iou_threshold)
    orphans = [
        fragment
        for fragment in sorted((d for d in detections if d.truncated), key=lambda d: -d.score)
        if not any(
            w.class_id == fragment.class_id and _overlap_of_smaller(w.box, fragment.box) >= fragment_overlap
            for w in whole
        )
    ]
    joined: list[Prediction] = []
    for fragment in orphans:
        fragment = replace(fragment, truncated=False)
        merged = True
        while merged:  # a union may reach detections that the fragment alone did not
            merged = False
            for i, other in enumerate(joined):
                if other.class_id == fragment.class_id and (
                    _overlap_of_smaller(other.box, fragment.box) >= fragment_overlap
                ):
                    fragment = _union(joined.pop(i), fragment)
                    merged = True
                    break
        joined.append(fragment)
    return sorted(whole + joined, key=lambda d: -d.score)


def detect_tiled(
    image: np.ndarray,
    detector: TileDetector,
    tile: int = 1024,
    overlap: float = 0.35,
    batch: int = 8,
    iou_threshold: float = 0.5,
) -> list[Prediction]:
    """Run `detector` on every tile of `image` and merge the results into image pixels."""
    height, width = image.shape[:2]
    tiles = tile_grid(width, height, tile, overlap)
    found: list[Prediction] = []
    for start in range(0, len(tiles), batch):
        chunk = tiles[start : start + batch]
        for window, local in zip(chunk, detector([t.crop(image) for t in chunk]), strict=True):
            found += [to_image(d, window, width, height) for d in local]
    return merge_detections(found, iou_threshold)
