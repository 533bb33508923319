"""Training crops of a crop classifier, cut from canonical datasets, and the crop geometry that
inference (evaluate/hybrid.py) shares, so that a region is seen as the training crops were.

Crops come labelled for free from the instance masks, synthetic and imported alike: a defect
instance is its class, an impurity instance (a water stain) is "not a defect", and random
windows of good images, sized like the defects, are "not a defect" too. Every random draw of an
epoch comes from a generator seeded by (seed, epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from synth.annotations import Prediction
from synth.dataset import Dataset
from synth.errors import DataError
from train.classifier.config import NOT_A_DEFECT, ClassifierConfig

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, as Prediction.box


@dataclass(frozen=True)
class Crop:
    """One labelled window: image `image` of its pool, around `box`."""

    image: int
    box: Box
    label: str


@dataclass
class CropPool:
    """Loaded images (H, W, 3 uint8) of one dataset split and the labelled crops on them."""

    images: list[np.ndarray]
    crops: list[Crop]


def class_names(roots: Sequence[Path]) -> list[str]:
    """The classifier's classes: "not a defect", then the defect classes of the datasets in the
    order they first appear (impurity classes are "not a defect")."""
    names = [NOT_A_DEFECT]
    for root in roots:
        names += [c.name for c in Dataset(root).classes if c.kind == "defect" and c.name not in names]
    return names


def window(box: Box, context: float, min_side: int) -> tuple[int, int, int]:
    """The square window (x0, y0, side) centred on `box`: its longer side plus `context` of it
    on each side, at least `min_side` pixels."""
    x0, y0, x1, y1 = box
    side = max(min_side, int(np.ceil(max(x1 - x0, y1 - y0) * (1 + 2 * context))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2)), side


def cut(image: np.ndarray, box: Box, config: ClassifierConfig) -> np.ndarray:
    """The crop of `box` as the classifier sees it: the `window` at native resolution, mirrored
    where it leaves the image, scaled down to `image_size` when larger (never up)."""
    x0, y0, side = window(box, config.context, config.image_size)
    height, width = image.shape[:2]
    before = max(0, -y0), max(0, -x0)
    after = max(0, y0 + side - height), max(0, x0 + side - width)
    if any(before) or any(after):
        widths = ((before[0], after[0]), (before[1], after[1]), (0, 0))
        image = np.pad(image, widths, mode="reflect" if min(height, width) > 1 else "edge")
    top, left = y0 + before[0], x0 + before[1]
    crop = image[top : top + side, left : left + side]
    if side != config.image_size:
        crop = cv2.resize(crop, (config.image_size, config.image_size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


def region_label(region: Prediction, instance_map: np.ndarray, names: dict[int, str]) -> str:
    """The class of the defect instance a proposed region overlaps most (`names`: defect
    instance id -> class name), or "not a defect" when it touches none."""
    x, y = region.mask_origin
    under = instance_map[y : y + region.mask.shape[0], x : x + region.mask.shape[1]][region.mask]
    counts = np.bincount(under[np.isin(under, list(names))].astype(np.int64)) if names else np.zeros(0)
    return names[int(counts.argmax())] if counts.any() else NOT_A_DEFECT


def load_crops(
    root: Path,
    split: str,
    config: ClassifierConfig,
    proposals: Callable[[np.ndarray], list[Prediction]] | None = None,
) -> CropPool:
    """Every instance of a split as a crop, and `good_crops_per_image` seeded random windows of
    each good image, their sizes drawn from the split's defect boxes. With `proposals` (an anomaly
    model's regions of an image), each proposed region is a crop too, labelled by `region_label`:
    the very crops the classifier sees in the hybrid, false alarms included."""
    dataset = Dataset(root)
    samples = dataset.samples(split)
    if not samples:
        raise DataError(f"{root}: the {split} split has no images to cut crops from")
    kinds = {c.id: c for c in dataset.classes}
    images, crops, sizes = [], [], []
    good: list[int] = []
    for index, sample in enumerate(tqdm(samples, desc=f"crops of {split}", unit="img", leave=False)):
        images.append(sample.image())
        annotations = sample.annotations(dataset.classes)
        for inst in annotations.instances:
            info = kinds[inst.class_id]
            crops.append(Crop(index, inst.xyxy, info.name if info.kind == "defect" else NOT_A_DEFECT))
            if info.kind == "defect":
                sizes.append(inst.bbox[2:])
        if proposals is not None:
            names = {i.instance_id: kinds[i.class_id].name for i in annotations.defects}
            for region in proposals(images[-1]):
                crops.append(Crop(index, region.box, region_label(region, annotations.instance_map, names)))
        if sample.good:
            good.append(index)
    for index in good:
        rng = np.random.default_rng([config.seed, index])
        height, width = images[index].shape[:2]
        for _ in range(config.good_crops_per_image):
            if sizes:
                w, h = sizes[int(rng.integers(len(sizes)))]
            else:  # no defects in this split: windows of an eighth to a half of the image
                w = h = int(rng.integers(max(1, min(height, width) // 8), max(2, min(height, width) // 2)))
            x0, y0 = rng.uniform(0, max(width - w, 0)), rng.uniform(0, max(height - h, 0))
            crops.append(Crop(index, (x0, y0, x0 + w, y0 + h), NOT_A_DEFECT))
    return CropPool(images, crops)


def jittered(box: Box, jitter: float, rng: np.random.Generator) -> Box:
    """The box moved by up to `jitter` of its size and scaled by up to 1 ± jitter."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    scale = 1 + rng.uniform(-jitter, jitter)
    cx = (x0 + x1) / 2 + rng.uniform(-jitter, jitter) * w
    cy = (y0 + y1) / 2 + rng.uniform(-jitter, jitter) * h
    return cx - w * scale / 2, cy - h * scale / 2, cx + w * scale / 2, cy + h * scale / 2


def augment(crop: np.ndarray, config: ClassifierConfig, rng: np.random.Generator) -> np.ndarray:
    """Flips and mild brightness/contrast; float32 in [0, 1]. No rotation by 90°: on a tile a
    crack runs along it and an uneven band across it, so direction is part of the class."""
    image = crop.astype(np.float32) / 255.0
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.5:
        image = image[::-1]
    gain = 1.0 + rng.uniform(-config.contrast, config.contrast)
    mean = image.mean()
    image = (image - mean) * gain + mean + rng.uniform(-config.brightness, config.brightness)
    return np.clip(image, 0.0, 1.0)


def epoch_batches(
    pools: Sequence[CropPool], names: Sequence[str], config: ClassifierConfig, epoch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The crops of one epoch in batches: images (B, S, S, 3) float32, labels (B,) int64. Each
    crop's class is drawn uniformly from the classes present, then a crop of that class."""
    rng = np.random.default_rng([config.seed, epoch])
    by_label: dict[str, list[tuple[int, int]]] = {}
    for p, pool in enumerate(pools):
        for c, crop in enumerate(pool.crops):
            by_label.setdefault(crop.label, []).append((p, c))
    labels = [n for n in names if n in by_label]
    for start in range(0, config.crops_per_epoch, config.batch_size):
        images, targets = [], []
        for _ in range(min(config.batch_size, config.crops_per_epoch - start)):
            label = labels[int(rng.integers(len(labels)))]
            p, c = by_label[label][int(rng.integers(len(by_label[label])))]
            crop = pools[p].crops[c]
            box = jittered(crop.box, config.jitter, rng)
            images.append(augment(cut(pools[p].images[crop.image], box, config), config, rng))
            targets.append(names.index(label))
        yield np.stack(images), np.array(targets, np.int64)


def fixed_crops(
    pool: CropPool, names: Sequence[str], config: ClassifierConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Every crop of a pool as it is (no jitter, no augmentation): validation data. Crops of a
    class the classifier does not know are left out."""
    known = [c for c in pool.crops if c.label in names]
    images = [cut(pool.images[c.image], c.box, config).astype(np.float32) / 255.0 for c in known]
    size = config.image_size
    return (
        np.stack(images) if images else np.zeros((0, size, size, 3), np.float32),
        np.array([names.index(c.label) for c in known], np.int64),
    )
