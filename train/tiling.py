"""Training on native-resolution tiles, shared by the YOLO and Mask R-CNN trainers.

Thin cracks vanish when a 500 x 1250 image is shrunk to a network's input, so training images
are cut by the same grid that tiled inference uses (synth.tiles) and each tile gets its labels
cut by `crop_annotations`: an instance cut by a tile border keeps its visible part; one showing
fewer than `min_area_px` pixels there (a sliver) is dropped. Most tiles of a real inspection
image show nothing, so every tile with a labelled instance is kept and only a seeded draw of
the empty ones, `good_share` of the list. The tiling is recorded in the weights, so that
evaluation and prediction cut images the same way.

Labels come from a canonical dataset's exact instance masks or, for an Ultralytics dataset
(the single-class views of the domain-gap experiments), from its YOLO label files.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synth.annotations import Annotations, ClassInfo
from synth.dataset import Dataset
from synth.errors import ConfigError
from synth.images import read_image
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
class Source:
    """An image to cut into tiles: its id, its file and a reader of its labels (read when the
    tiles are chosen, not kept: a split's instance maps together can be large)."""

    id: str
    image_path: Path
    labels: Callable[[], Annotations]

    def image(self) -> np.ndarray:
        return read_image(self.image_path)


def canonical_sources(dataset: Dataset, split: str) -> list[Source]:
    """A canonical dataset's split, labelled by its exact instance masks."""
    return [
        Source(s.id, s.image_path, lambda s=s: s.annotations(dataset.classes)) for s in dataset.samples(split)
    ]


def yolo_sources(images: Sequence[Path], classes: tuple[ClassInfo, ...]) -> list[Source]:
    """Images labelled by Ultralytics label files (`images/` -> `labels/`, `.txt`; a missing
    file is a good image), their boxes or polygons filled into instance masks."""

    def labels(image: Path) -> Annotations:
        parts = list(image.parts)
        where = len(parts) - 1 - parts[::-1].index("images")
        path = Path(*parts[:where], "labels", *parts[where + 1 :]).with_suffix(".txt")
        text = path.read_text() if path.is_file() else ""
        height, width = read_image(image).shape[:2]
        return Annotations.from_yolo(text, (height, width), classes, source=str(path))

    return [Source(image.stem, image, lambda image=image: labels(image)) for image in images]


@dataclass(frozen=True)
class TrainTile:
    """One training tile: the image it is cut from, the window and its labels."""

    source: Source
    tile: Tile
    annotations: Annotations

    @property
    def name(self) -> str:
        return f"{self.source.id}__x{self.tile.x0}_y{self.tile.y0}"


def split_tiles(sources: Sequence[Source], tiling: Tiling, seed: int = 0) -> list[TrainTile]:
    """The tiles to train on: every labelled tile, then a seeded draw of empty ones
    (round(good_share / (1 - good_share) x labelled), at most all of them), grouped by image in
    the sources' order. Sources without any labelled tile keep all their tiles (good images
    only)."""
    labelled: list[tuple[int, TrainTile]] = []
    empty: list[tuple[int, Source, Tile, tuple[ClassInfo, ...], float | None]] = []
    for order, source in enumerate(sources):
        annotations = source.labels()
        height, width = annotations.size
        for tile in tiling.grid(width, height):
            window = tile.crop(annotations.instance_map)
            _, counts = np.unique(window[window > 0], return_counts=True)
            if (counts >= tiling.min_area_px).any():
                cropped = crop_annotations(annotations, tile, tiling.min_area_px)
                labelled.append((order, TrainTile(source, tile, cropped)))
            else:
                empty.append((order, source, tile, annotations.classes, annotations.mm_per_px))
    share = tiling.good_share
    wanted = round(share / (1 - share) * len(labelled)) if labelled else len(empty)
    chosen = list(labelled)
    for i in random.Random(seed).sample(range(len(empty)), min(wanted, len(empty))):
        order, source, tile, classes, mm_per_px = empty[i]
        blank = Annotations(np.zeros(tile.size, np.uint16), (), classes, mm_per_px)
        chosen.append((order, TrainTile(source, tile, blank)))
    return [t for _, t in sorted(chosen, key=lambda item: (item[0], item[1].tile.y0, item[1].tile.x0))]
