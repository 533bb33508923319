"""Cutting source images into samples: a valid region found by a stated rule, then tiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluate.formats.source import (
    SourceItem,
    skip,
)
from synth.annotations import Annotations
from synth.errors import ConfigError
from synth.tiles import Tile, overlap_fraction, tiles_within

VALID_REGION_RULES = ("saturated-columns",)


@dataclass(frozen=True)
class Cutting:
    """How a source image becomes samples: cropped to its valid region (`valid_region`, a rule
    of VALID_REGION_RULES), then cut into `tile` px tiles at most `stride` px apart (default:
    `tile`); a tile with less than `min_valid` of its pixels in the valid region is dropped.
    The defaults leave an image one sample, as it is."""

    tile: int | None = None
    stride: int | None = None
    valid_region: str | None = None
    saturation: int = 250
    min_valid: float = 0.5

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < 1:
            raise ConfigError(f"--tile {self.tile}: expected a tile size of at least 1 px")
        if self.stride is not None:
            if self.tile is None:
                raise ConfigError(f"--stride {self.stride} needs --tile (it is the step between tiles)")
            if not 1 <= self.stride <= self.tile:
                gap = self.stride - self.tile
                why = f": tiles would leave gaps of {gap} px between them" if gap > 0 else ""
                raise ConfigError(f"--stride {self.stride}: expected 1 to --tile {self.tile}{why}")
        if self.valid_region is not None and self.valid_region not in VALID_REGION_RULES:
            rules = ", ".join(VALID_REGION_RULES)
            raise ConfigError(f"--valid-region {self.valid_region!r}: unknown rule, expected one of {rules}")
        if not 0 <= self.saturation <= 255:
            raise ConfigError(f"--saturation {self.saturation}: expected an 8-bit value, 0 to 255")
        if not 0.0 <= self.min_valid <= 1.0:
            raise ConfigError(f"--min-valid {self.min_valid}: expected a fraction of a tile, 0 to 1")

    @property
    def active(self) -> bool:
        return self.tile is not None or self.valid_region is not None


NO_CUTTING = Cutting()  # an image is one sample, as it is


def valid_window(image: np.ndarray, rule: str | None, saturation: int = 250) -> Tile | None:
    """The part of an image that is surface, as a window; None when no part of it is.

    `saturated-columns`: the columns from the left and from the right edge inwards whose median
    is saturated (at least `saturation` in every channel: white) are not surface, such as the
    white band at the left of many AITEX strips; an image without such columns is kept whole.
    """
    height, width = image.shape[:2]
    if rule is None:
        return Tile(0, 0, width, height)
    surface = np.flatnonzero(np.median(image.min(axis=2), axis=0) < saturation)
    return Tile(int(surface[0]), 0, int(surface[-1]) + 1, height) if surface.size else None


Piece = tuple[str, Tile | None]  # a sample's id and its window in source pixels (None: all of it)


def cut_item(
    item: SourceItem, image: np.ndarray, annotations: Annotations, cutting: Cutting
) -> tuple[list[Piece], list[str], list[dict[str, Any]]] | dict[str, str]:
    """The samples a source image is cut into, notes on the cut, and its dropped tiles; or the
    skip of an image whose cut leaves nothing it may be imported as. Without cutting, the image
    is its one sample, as it is.

    A tile's id is the image's id and its offset (`0001_002_00_x1103`, `_y0256` added below
    the first row). Labelled pixels that no kept sample holds are counted in a note; when that
    is all of a defect-class image's labels, the image is skipped: its samples would count as
    good.
    """
    if not cutting.active:
        return [(item.id, None)], [], []
    height, width = image.shape[:2]
    window = valid_window(image, cutting.valid_region, cutting.saturation)
    if window is None:
        why = f"every column has a median >= {cutting.saturation}, so no part of it is surface"
        return skip(item.image, f"--valid-region {cutting.valid_region}: {why}")
    notes = []
    if window != Tile(0, 0, width, height):
        notes.append(
            f"{item.image}: --valid-region {cutting.valid_region} keeps columns {window.x0}..{window.x1 - 1} "
            f"of {width}: {window.x0} at the left and {width - window.x1} at the right have a median "
            f">= {cutting.saturation} and are cropped"
        )
    pieces: list[Piece] = []
    dropped: list[dict[str, Any]] = []
    if cutting.tile is None:
        pieces.append((item.id, window))
    else:
        for tile in tiles_within(window, width, height, cutting.tile, cutting.stride or cutting.tile):
            sid = f"{item.id}_x{tile.x0:04d}" + (f"_y{tile.y0:04d}" if tile.y0 else "")
            valid = overlap_fraction(tile, window)
            if valid < cutting.min_valid:
                dropped.append({"file": str(item.image), "id": sid, "valid_fraction": round(valid, 4)})
            else:
                pieces.append((sid, tile))
    covered = np.zeros((height, width), bool)
    for _, tile in pieces:
        if tile is not None:
            covered[tile.y0 : tile.y1, tile.x0 : tile.x1] = True
    labelled = annotations.instance_map > 0
    lost, total = int((labelled & ~covered).sum()), int(labelled.sum())
    where = (
        f"{item.label_file or item.image}: {lost} of its {total} labelled px lie outside the valid "
        "region or in dropped tiles"
    )
    if lost and lost == total and item.stratum != "good":
        return skip(item.image, f"{where}; its class is {item.stratum}, so it is not imported as good")
    if lost:
        notes.append(f"{where} and are not imported")
    return pieces, notes, dropped
