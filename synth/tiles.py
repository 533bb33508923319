"""The one home of tiling: exact tile grids over an image, and its labels cut to a tile.

Tiled inference (evaluate.tiling), the segmenter's tiled training and prediction, and tiling
at import (evaluate.importers) all cut images by these grids, so a tile means the same window
everywhere. `crop_annotations` cuts an image's `Annotations` to one tile, for training and
importing on tiles: tiles of a grid reassemble into the image and its masks exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synth.annotations import Annotations


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
