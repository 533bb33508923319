"""The settings of a crop classifier: input, crop geometry, augmentations and schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from train.devices import check_device
from train.patchcore.config import IMAGENET_MEAN, IMAGENET_STD, PACKAGE_WEIGHTS
from train.settings import Settings

# The label of every crop that shows no defect: impurities and plain surface.
NOT_A_DEFECT = "not_a_defect"


@dataclass(frozen=True)
class ClassifierConfig(Settings):
    """Everything that defines a crop classifier and how it is trained.

    A crop is a square window centred on a region's box: its side is the box's longer side
    plus `context` of it on each side, and at least `image_size`, so small regions are seen at
    native resolution with their surroundings and only larger ones are scaled down to
    `image_size`. `good_crops_per_image` random windows of each good image (sized like the
    dataset's defects) teach "not a defect" beside the impurity instances. `jitter` moves and
    scales the training boxes by up to that share of their size, since an anomaly map's regions
    are never the exact instance masks. Each epoch draws `crops_per_epoch` crops with every
    class equally likely (classes are very unequal in size). `train_blocks` is how many of the
    backbone's 7 stages, counted from the last, train with the head (with the 1x1 head
    convolution); 0 keeps the ImageNet backbone frozen, which is fast on a CPU and hard to
    overfit with a few dozen real defects.
    """

    what: ClassVar[str] = "classifier"

    weights: str = PACKAGE_WEIGHTS
    image_size: int = 64
    train_blocks: int = 0
    context: float = 0.5
    good_crops_per_image: int = 2
    jitter: float = 0.3
    epochs: int = 15
    patience: int = 4
    crops_per_epoch: int = 512
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    brightness: float = 0.1
    contrast: float = 0.1
    seed: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        checks = {
            "weights": self.weights in (PACKAGE_WEIGHTS, "none"),
            "image_size": self.image_size >= 32,
            "train_blocks": 0 <= self.train_blocks <= 7,
            "context": 0 <= self.context <= 4,
            "good_crops_per_image": self.good_crops_per_image >= 0,
            "jitter": 0 <= self.jitter < 1,
            "epochs": self.epochs >= 1,
            "patience": self.patience >= 1,
            "crops_per_epoch": self.crops_per_epoch >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "brightness": 0 <= self.brightness < 1,
            "contrast": 0 <= self.contrast < 1,
        }
        self.check(
            checks,
            f" (weights: {PACKAGE_WEIGHTS} or none; image_size >= 32; train_blocks 0..7; "
            "context in [0, 4]; jitter in [0, 1); counts >= 1; lr > 0)",
        )
        check_device(self.device)
