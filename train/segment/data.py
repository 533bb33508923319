"""Training data of a segmenter: images and defect targets of canonical datasets, crops biased
towards defects, and gentle augmentations that keep thin defects.

Targets are defect pixels only: impurity classes (water stains, fingerprints) are background,
so a model that segments a stain is wrong by construction. Every random draw of an epoch comes
from a generator seeded by (seed, epoch), so an epoch replays exactly after a resume.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from synth.dataset import Dataset
from synth.errors import DataError
from train.segment.config import SegmentConfig


@dataclass(frozen=True)
class TrainSource:
    """Images of one split of a canonical dataset; `ids` restricts them (a real budget)."""

    root: Path
    split: str = "train"
    ids: tuple[str, ...] | None = None

    def recipe(self) -> dict:
        return {"root": str(Path(self.root).resolve()), "split": self.split, "ids": self.ids}


@dataclass
class Pool:
    """Loaded images (H, W, 3 uint8) and targets (H, W, C bool) of one source."""

    images: list[np.ndarray]
    targets: list[np.ndarray]


def defect_class_names(root: Path) -> list[str]:
    return [c.name for c in Dataset(root).classes if c.kind == "defect"]


def load_pool(source: TrainSource, class_names: Sequence[str], per_class: bool) -> Pool:
    """Read a source's images and defect targets; a dataset without masks is refused."""
    dataset = Dataset(source.root)
    samples = dataset.samples(source.split)
    if source.ids is not None:
        wanted = set(source.ids)
        samples = [s for s in samples if s.id in wanted]
        missing = wanted - {s.id for s in samples}
        if missing:
            raise DataError(f"{source.root}: no {source.split} images {sorted(missing)[:3]}")
    if not samples:
        raise DataError(f"{source.root}: the {source.split} split has no images to train on")
    by_name = {c.name: c for c in dataset.classes}
    defect_ids = [c.id for c in dataset.classes if c.kind == "defect"]
    channels = [[by_name[n].id] if n in by_name else [] for n in class_names] if per_class else [defect_ids]
    images, targets = [], []
    for sample in samples:
        if not sample.mask_path.is_file():
            raise DataError(
                f"{source.root}: {source.split} image {sample.id} has no mask ({sample.mask_path}); "
                "a segmenter trains on pixel masks (import the data with its masks)"
            )
        mask = sample.mask()
        images.append(sample.image())
        targets.append(np.stack([np.isin(mask, ids) for ids in channels], axis=-1))
    return Pool(images, targets)


def pad_to(array: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad so both sides are at least `size` (image and target alike, so a mirrored
    defect stays labelled)."""
    dy, dx = max(0, size - array.shape[0]), max(0, size - array.shape[1])
    if not dy and not dx:
        return array
    widths = [(0, dy), (0, dx)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="reflect" if min(array.shape[:2]) > 1 else "edge")


def random_crop(
    image: np.ndarray, target: np.ndarray, size: int, defect_share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A size x size crop; with probability `defect_share` (and defects present) it is centred,
    with jitter, on a random defect pixel."""
    image, target = pad_to(image, size), pad_to(target, size)
    height, width = image.shape[:2]
    ys, xs = np.nonzero(target.any(axis=-1))
    if len(ys) and rng.random() < defect_share:
        i = rng.integers(len(ys))
        jitter = rng.integers(-size // 4, size // 4 + 1, size=2)
        y0 = int(np.clip(ys[i] - size // 2 + jitter[0], 0, height - size))
        x0 = int(np.clip(xs[i] - size // 2 + jitter[1], 0, width - size))
    else:
        y0, x0 = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
    return image[y0 : y0 + size, x0 : x0 + size], target[y0 : y0 + size, x0 : x0 + size]


def augment(
    image: np.ndarray, target: np.ndarray, config: SegmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Flips, a small rotation, brightness/contrast, light blur and noise. Image (float32 in
    [0, 1]) and target (bool) move together; the target is warped with nearest neighbours so a
    one-pixel scratch stays one pixel."""
    if rng.random() < 0.5:
        image, target = image[:, ::-1], target[:, ::-1]
    if rng.random() < 0.5:
        image, target = image[::-1], target[::-1]
    image, target = np.ascontiguousarray(image), np.ascontiguousarray(target)
    if config.rotate_deg > 0:
        angle = rng.uniform(-config.rotate_deg, config.rotate_deg)
        size = image.shape[1], image.shape[0]
        matrix = cv2.getRotationMatrix2D((size[0] / 2, size[1] / 2), angle, 1.0)
        image = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        warped = cv2.warpAffine(
            target.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101
        )
        target = warped.reshape(target.shape).astype(bool)
    gain = 1.0 + rng.uniform(-config.contrast, config.contrast)
    image = (image - image.mean()) * gain + image.mean() + rng.uniform(-config.brightness, config.brightness)
    if config.blur_sigma > 0 and rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, config.blur_sigma))
    if config.noise > 0 and rng.random() < 0.3:
        image = image + rng.normal(0.0, rng.uniform(0, config.noise), image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32), target


def epoch_batches(
    pools: Sequence[Pool], config: SegmentConfig, epoch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The crops of one epoch in batches: images (B, H, W, 3) float32, targets (B, H, W, C).

    With two pools (synthetic, real) a crop comes from the second with probability
    `real_share`, so a handful of real images is oversampled against hundreds of renders.
    """
    rng = np.random.default_rng([config.seed, epoch])
    weights = [1.0] if len(pools) == 1 else [1.0 - config.real_share, config.real_share]
    for start in range(0, config.crops_per_epoch, config.batch_size):
        images, targets = [], []
        for _ in range(min(config.batch_size, config.crops_per_epoch - start)):
            pool = pools[int(rng.choice(len(pools), p=weights))]
            i = int(rng.integers(len(pool.images)))
            image, target = random_crop(
                pool.images[i], pool.targets[i], config.image_size, config.defect_crop_share, rng
            )
            image, target = augment(image.astype(np.float32) / 255.0, target, config, rng)
            images.append(image)
            targets.append(target)
        yield np.stack(images), np.stack(targets)
