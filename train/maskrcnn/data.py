"""Training tiles as torchvision detection samples, with gentle, seeded augmentations.

A tile's targets come from its exact instance masks (train/tiling.py cuts them): the box is the
visible part's pixel extent, the mask its pixels, the label the class's position + 1 (0 is
torchvision's background). Impurities are classes like defects, so the model learns to name a
stain rather than to call it a defect.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from synth.annotations import ClassInfo
from train.maskrcnn.config import MaskRCNNConfig
from train.tiling import TrainTile

Sample = tuple[torch.Tensor, dict[str, torch.Tensor]]


def target_of(tile: TrainTile, classes: list[ClassInfo]) -> dict[str, torch.Tensor]:
    """Boxes (x0, y0, x1, y1 pixel extents), labels and uint8 masks of a tile's instances."""
    labels = {c.id: i + 1 for i, c in enumerate(classes)}
    annotations = tile.annotations
    instances = annotations.instances
    height, width = annotations.size
    masks = np.stack([annotations.instance_map == i.instance_id for i in instances]) if instances else None
    return {
        "boxes": torch.tensor([i.xyxy for i in instances], dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([labels[i.class_id] for i in instances], dtype=torch.int64),
        "masks": torch.zeros((0, height, width), dtype=torch.uint8)
        if masks is None
        else torch.from_numpy(masks.astype(np.uint8)),
    }


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float (3, H, W) in [0, 1], what torchvision's detectors take."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)


def augment(sample: Sample, config: MaskRCNNConfig, rng: np.random.Generator) -> Sample:
    """Horizontal flip (boxes and masks with it), then mild brightness and contrast jitter."""
    image, target = sample
    if rng.random() < config.hflip:
        width = image.shape[-1]
        image, boxes = image.flip(-1), target["boxes"].clone()
        boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        target = {**target, "boxes": boxes, "masks": target["masks"].flip(-1)}
    gain = 1 + rng.uniform(-config.contrast, config.contrast)
    shift = rng.uniform(-config.brightness, config.brightness)
    mean = image.mean()
    return ((image - mean) * gain + mean + shift).clamp(0, 1), target


def epoch_batches(
    tiles: list[TrainTile], classes: list[ClassInfo], config: MaskRCNNConfig, epoch: int
) -> Iterator[list[Sample]]:
    """The tiles in a seeded order of (seed, epoch), augmented, in batches of `batch_size`;
    an image is read once per batch however many of its tiles the batch holds."""
    rng = np.random.default_rng([config.seed, epoch])
    order = rng.permutation(len(tiles))
    for start in range(0, len(order), config.batch_size):
        chosen = [tiles[i] for i in order[start : start + config.batch_size]]
        images = {t.source.id: t.source.image() for t in chosen}
        yield [
            augment((to_tensor(t.tile.crop(images[t.source.id])), target_of(t, classes)), config, rng)
            for t in chosen
        ]


def plain_batches(
    tiles: list[TrainTile], classes: list[ClassInfo], batch_size: int
) -> Iterator[list[Sample]]:
    """The tiles in their own order, unaugmented (validation)."""
    for start in range(0, len(tiles), batch_size):
        chosen = tiles[start : start + batch_size]
        images = {t.source.id: t.source.image() for t in chosen}
        yield [(to_tensor(t.tile.crop(images[t.source.id])), target_of(t, classes)) for t in chosen]
