"""Training on native-resolution tiles, shared by the YOLO and Mask R-CNN trainers.

Thin cracks vanish when a 500 x 1250 image is shrunk to a network's input, so training images
are cut by the same grid that tiled inference uses (synth.tiles) and each tile gets its labels
cut by `crop_annotations`: an instance cut by a tile border keeps its visible part; one showing
fewer than `min_area_px` pixels there (a sliver) is dropped. Most tiles of a real inspection
image show nothing, so every tile with a labelled instance is kept and only a seeded draw of
the empty ones, `good_share` of the list. The tiling is recorded in the weights, so that
evaluation and prediction cut images the same way.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from synth.annotations import Annotations
from synth.dataset import Dataset, Sample
from synth.errors import ConfigError
from synth.tiles import Tile, crop_annotations, tile_grid


@dataclass(frozen=True)
class Tiling:
    """How images are cut for training and inference.

    `tile`: side in pixels (an image smaller than that is one tile of its own size);
    `overlap`: the share of a tile its neighbour sees; `good_share`: the share of the training
    tiles that show no labelled instance (background; a tile with only an impurity counts as
    labelled); `min_area_px`: the fewest pixels of an instance a tile must show to keep it.
    """

    tile: int
    overlap: float = 0.25
    good_share: float = 0.25
    min_area_px: int = 9

    def __post_init__(self) -> None:
        checks = {
            "tile": self.tile >= 32,
            "overlap": 0 <= self.overlap < 1,
            "good_share": 0 <= self.good_share < 1,
            "min_area_px": self.min_area_px >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"tiling {name} {getattr(self, name)!r}: expected tile >= 32, 0 <= overlap < 1, "
                    "0 <= good_share < 1, min_area_px >= 1"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tiling:
        return cls(**data)

    def grid(self, width: int, height: int) -> list[Tile]:
        return tile_grid(width, height, self.tile, self.overlap)


@dataclass(frozen=True)
class TrainTile:
    """One training tile: the sample it is cut from, the window and its labels."""

    sample: Sample
    tile: Tile
    annotations: Annotations

    @property
    def name(self) -> str:
        return f"{self.sample.id}__x{self.tile.x0}_y{self.tile.y0}"

    def image(self) -> np.ndarray:
        return self.tile.crop(self.sample.image())


def split_tiles(dataset: Dataset, split: str, tiling: Tiling, seed: int = 0) -> list[TrainTile]:
    """The tiles of a split to train on: every labelled tile, then a seeded draw of empty ones
    (round(good_share / (1 - good_share) x labelled), at most all of them), in a fixed order.

    A split without any labelled tile keeps all its tiles (a set of good images only).
    """
    labelled: list[TrainTile] = []
    empty: list[tuple[Sample, Tile]] = []
    for sample in dataset.samples(split):
        annotations = sample.annotations(dataset.classes)
        height, width = annotations.size
        for tile in tiling.grid(width, height):
            window = tile.crop(annotations.instance_map)
            _, counts = np.unique(window[window > 0], return_counts=True)
            if (counts >= tiling.min_area_px).any():
                cropped = crop_annotations(annotations, tile, tiling.min_area_px)
                labelled.append(TrainTile(sample, tile, cropped))
            else:
                empty.append((sample, tile))
    share = tiling.good_share
    wanted = round(share / (1 - share) * len(labelled)) if labelled else len(empty)
    drawn = random.Random(seed).sample(range(len(empty)), min(wanted, len(empty)))
    chosen = labelled + [_empty_tile(dataset, *empty[i]) for i in sorted(drawn)]
    return sorted(chosen, key=lambda t: (t.sample.id, t.tile.y0, t.tile.x0))


def _empty_tile(dataset: Dataset, sample: Sample, tile: Tile) -> TrainTile:
    height, width = tile.size
    blank = np.zeros((height, width), np.uint16)
    return TrainTile(sample, tile, Annotations(blank, (), dataset.classes, sample.meta.get("mm_per_px")))
