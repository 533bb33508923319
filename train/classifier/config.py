"""The settings of a crop classifier: input, crop geometry, augmentations and schedule."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from train.patchcore.config import IMAGENET_MEAN, IMAGENET_STD, PACKAGE_WEIGHTS, BackboneWeights
from train.settings import DeviceSettings

# The label of every crop that shows no defect: impurities and plain surface.
NOT_A_DEFECT = "not_a_defect"


class ClassifierConfig(DeviceSettings):
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

    weights: BackboneWeights = PACKAGE_WEIGHTS
    image_size: int = Field(64, ge=32)
    train_blocks: int = Field(0, ge=0, le=7)
    context: float = Field(0.5, ge=0, le=4)
    good_crops_per_image: int = Field(2, ge=0)
    jitter: float = Field(0.3, ge=0, lt=1)
    epochs: int = Field(15, ge=1)
    patience: int = Field(4, ge=1)
    crops_per_epoch: int = Field(512, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    brightness: float = Field(0.1, ge=0, lt=1)
    contrast: float = Field(0.1, ge=0, lt=1)
    seed: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
