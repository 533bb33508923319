"""The settings of a Mask R-CNN run: backbone, tiling, schedule and augmentations."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from train.settings import Settings
from train.tiling import Tiling

# The backbone stages (stride 2, 4, 8, 16, 32) that can be trained; the earlier ones stay frozen.
STAGES = 5


class MaskRCNNConfig(Settings):
    """Everything that defines a Mask R-CNN and how it is trained.

    `backbone` is one of train/backbones.py's offline ImageNet networks; `trainable_stages`
    of its five resolution stages train (counted from the deepest), the rest stay at their
    ImageNet values, as torchvision's `trainable_backbone_layers`; `freeze_backbone_epochs`
    keeps the whole backbone frozen for the first epochs. Batch norm is frozen throughout (a
    few tiles per batch give no usable statistics). `anchor_sizes` are the anchor sides of the
    five FPN levels (strides 4 to 64), small because defects are. `input_size` resizes every
    tile so that its longer side is that many pixels (default: the tile, native resolution; a
    tile larger than the image is the whole image). Augmentations are gentle: a
    horizontal flip and mild brightness and contrast jitter; nothing that rotates raking light
    or blurs a thin crack away. `keep` picks the weights written at the end: those of the epoch
    with the lowest val loss, or the last epoch's (the end of the cosine schedule), for val
    splits too small for their loss to rank epochs.
    """

    what: ClassVar[str] = "Mask R-CNN"

    backbone: Literal["mobilenet_v2", "efficientnet_lite0"] = "mobilenet_v2"
    fpn_channels: int = Field(128, ge=16, le=512)
    anchor_sizes: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256)
    aspect_ratios: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    trainable_stages: int = Field(3, ge=0, le=STAGES)
    freeze_backbone_epochs: int = Field(0, ge=0)
    tile: int = Field(320, ge=32)
    input_size: int | None = Field(None, ge=32)
    overlap: float = Field(0.25, ge=0, lt=1)
    good_tile_share: float = Field(0.25, ge=0, lt=1)
    min_tile_area_px: int = Field(9, ge=1)
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(4, ge=1)
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(50, ge=0)
    hflip: float = Field(0.5, ge=0, le=1)
    brightness: float = Field(0.1, ge=0, lt=1)
    contrast: float = Field(0.1, ge=0, lt=1)
    keep: Literal["best_val", "last"] = "best_val"
    seed: int = 0

    @property
    def network_input(self) -> int:
        return self.input_size or self.tile

    @property
    def tiling(self) -> Tiling:
        return Tiling(self.tile, self.overlap, self.good_tile_share, self.min_tile_area_px)

    def network_setup(self) -> dict[str, Any]:
        """The fields that fix the network's tensors: a weights file must match them."""
        return {k: getattr(self, k) for k in ("backbone", "fpn_channels", "anchor_sizes", "aspect_ratios")}
