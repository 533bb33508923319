"""The one home of tiling: exact tile grids over an image, its labels cut to a tile, and
detections merged back across tiles.

Tiled inference (`detect_tiled`), the segmenter's tiled training and prediction, and tiling
at import (evaluate.importers) all cut images by these grids, so a tile means the same window
everywhere. `crop_annotations` cuts an image's `Annotations` to one tile, for training and
importing on tiles: tiles of a grid reassemble into the image and its masks exactly.

Small defects vanish when a 5000 px image is resized to the network's input, so the image is cut
into overlapping tiles at native resolution. A defect cut by a tile border appears once whole (in
a neighbouring tile, when the overlap is larger than the defect) and once truncated, or only as
truncated fragments (when it is larger than the overlap); merging keeps the whole detection, or
the union of the fragments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from synth.annotations import Annotations, Prediction


@dataclass(frozen=True)
class Tile:
    """A window [x0, x1) x [y0, y1) of the image, in pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def size(self) -> tuple[int, int]:
        """(h, w), the order of an array's shape."""
        return self.y1 - self.y0, self.x1 - self.x0

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y0 : self.y1, self.x0 : self.x1]


def strided_origins(size: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis covering [0, size), at most `stride` apart, the last tile
    flush with the border, spread evenly (so a size that the stride divides gives 0, stride,
    2 stride, ...). An axis no longer than a tile gets one tile (which is then the whole axis).
    """
    if tile < 1 or not 1 <= stride <= tile:
        raise ValueError(f"tile {tile}, stride {stride}: expected tile >= 1 and 1 <= stride <= tile")
    if size <= tile:
        return [0]
    count = math.ceil((size - tile) / stride) + 1
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def tile_origins(size: int, tile: int, overlap: float) -> list[int]:
    """Tile starts along one axis whose neighbours share at least ceil(tile * overlap) pixels:
    `strided_origins` with the stride floor(tile * (1 - overlap)) (at least 1)."""
    if tile < 1 or not 0.0 <= overlap < 1.0:
        raise ValueError(f"tile {tile}, overlap {overlap}: expected tile >= 1, 0 <= overlap < 1")
    return strided_origins(size, tile, max(1, math.floor(tile * (1.0 - overlap))))


def tile_grid(
    width: int, height: int, tile: int, overlap: float = 0.0, stride: int | None = None
) -> list[Tile]:
    """Row-major tiles of at most tile x tile pixels covering a width x height image.

    Neighbours overlap by the fraction `overlap`, or, when `stride` is given, start at most
    `stride` pixels apart (`strided_origins`; overlap is then not used).
    """
    tile_w, tile_h = min(tile, width), min(tile, height)
    if stride is None:
        xs, ys = tile_origins(width, tile, overlap), tile_origins(height, tile, overlap)
    else:
        xs, ys = strided_origins(width, tile, stride), strided_origins(height, tile, stride)
    return [Tile(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]


def crop_annotations(annotations: Annotations, tile: Tile, min_area_px: int = 1) -> Annotations:
    """The labels of one tile of an image: each instance keeps the part of it that the tile
    shows, under its own instance id, class and role (defect or impurity); an instance showing
    fewer than `min_area_px` pixels (a sliver at the border) is dropped, so its pixels are
    background in the tile. The semantic mask follows from the instance map.
    """
    height, width = annotations.size
    if not (0 <= tile.x0 < tile.x1 <= width and 0 <= tile.y0 < tile.y1 <= height):
        raise ValueError(f"{tile} does not lie inside the {width}x{height} image")
    window = tile.crop(annotations.instance_map).copy()
    ids, counts = np.unique(window, return_counts=True)
    small = [int(i) for i, n in zip(ids, counts, strict=True) if i and n < min_area_px]
    if small:
        window[np.isin(window, small)] = 0
    classes = {i.instance_id: i.class_id for i in annotations.instances}
    return Annotations.from_instance_map(window, classes, annotations.classes, annotations.mm_per_px)


def tiles_within(window: Tile, width: int, height: int, tile: int, stride: int) -> list[Tile]:
    """Row-major tiles of tile x tile px (the whole axis where the image is shorter) that cover
    `window` of a width x height image, at most `stride` apart, each inside the image.

    Where the window is narrower than a tile, its one tile reaches past the window, flush with
    the window's far edge when the image allows (else with the image's): tiles keep their size,
    and the share of a tile inside the window says how much of it is what the window holds.
    """
    if not (0 <= window.x0 < window.x1 <= width and 0 <= window.y0 < window.y1 <= height):
        raise ValueError(f"{window} does not lie inside the {width}x{height} image")

    def axis(start: int, end: int, size: int) -> tuple[list[int], int]:
        span = min(tile, size)
        return [
            min(start + o, size - span) for o in strided_origins(end - start, span, min(stride, span))
        ], span

    xs, tile_w = axis(window.x0, window.x1, width)
    ys, tile_h = axis(window.y0, window.y1, height)
    return [Tile(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]


def overlap_fraction(tile: Tile, window: Tile) -> float:
    """The share of `tile`'s pixels that lie inside `window`."""
    w = min(tile.x1, window.x1) - max(tile.x0, window.x0)
    h = min(tile.y1, window.y1) - max(tile.y0, window.y0)
    return max(w, 0) * max(h, 0) / ((tile.x1 - tile.x0) * (tile.y1 - tile.y0))


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
