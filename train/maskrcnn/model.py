"""The network (torchvision Mask R-CNN on an FPN over an offline ImageNet backbone), its weights
file and tiled inference.

The backbone is one of train/backbones.py's networks with its batch norm frozen (torchvision's
own choice for detection backbones: a few tiles per batch give no usable statistics); its four
feature maps of strides 4 to 32 feed a feature pyramid, whose max-pooled fifth level serves the
largest anchors. Inference cuts an image by the weights' own tiling (synth.tiles) and merges the
tiles' detections (synth.tiles.detect_tiled).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synth.annotations import ClassInfo, Prediction
from synth.errors import ModelError
from synth.tiles import detect_tiled
from train.checkpoints import WeightsFile
from train.maskrcnn.config import MaskRCNNConfig
from train.maskrcnn.data import to_tensor

WEIGHTS = WeightsFile("defectsynth-maskrcnn-1", "Mask R-CNN", "train pretrain maskrcnn")
MASK_THRESHOLD = 0.5
# Where each backbone's five resolution stages (strides 2 .. 32) begin, and its four outputs.
_MOBILENET_STAGES = (0, 2, 4, 7, 14)  # indices into torchvision's MobileNetV2.features
_MOBILENET_OUTPUTS = {"3": "0", "6": "1", "13": "2", "17": "3"}  # strides 4, 8, 16, 32
_MOBILENET_CHANNELS = [24, 32, 96, 320]
_LITE0_STAGES = (("conv_stem", "bn1", "blocks.0"), ("blocks.1",), ("blocks.2",))
_LITE0_STAGES += (("blocks.3", "blocks.4"), ("blocks.5", "blocks.6"))


class Pyramid(nn.Module):
    """A backbone's four feature maps (strides 4 to 32) through an FPN, as torchvision's detectors
    take it (an ordered dict of maps and `out_channels`)."""

    def __init__(self, body: nn.Module, channels: list[int], out_channels: int) -> None:
        from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(x)
        maps = list(maps.values()) if isinstance(maps, dict) else maps
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))


def _body(config: MaskRCNNConfig, pretrained: bool) -> tuple[nn.Module, list[int], list[list[nn.Module]]]:
    """The backbone's feature body, its output channels and its five stages (to freeze)."""
    from torchvision.models import mobilenet_v2
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.ops.misc import FrozenBatchNorm2d

    from train import backbones

    if config.backbone == "mobilenet_v2":
        build = backbones.mobilenet_v2 if pretrained else lambda **kw: mobilenet_v2(weights=None, **kw)
        features = build(norm_layer=FrozenBatchNorm2d).features
        ends = [*_MOBILENET_STAGES[1:], len(features)]
        stages = [list(features[a:b]) for a, b in zip(_MOBILENET_STAGES, ends, strict=True)]
        return IntermediateLayerGetter(features, _MOBILENET_OUTPUTS), _MOBILENET_CHANNELS, stages
    import timm
    from timm.layers import freeze_batch_norm_2d

    options = {"features_only": True, "out_indices": (1, 2, 3, 4)}
    model = (
        backbones.efficientnet_lite0(**options)
        if pretrained
        else timm.create_model(backbones.LITE0_NAME, pretrained=False, **options)
    )
    model = freeze_batch_norm_2d(model)
    stages = [[model.get_submodule(name) for name in names] for names in _LITE0_STAGES]
    return model, list(model.feature_info.channels()), stages


def build_network(config: MaskRCNNConfig, num_classes: int, pretrained: bool) -> tuple[nn.Module, nn.Module]:
    """A Mask R-CNN for `num_classes` classes plus background, and its backbone body; with
    `pretrained`, the backbone starts from its ImageNet weights and only the last
    `trainable_stages` stages train."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

    body, channels, stages = _body(config, pretrained)
    for stage in stages[: len(stages) - config.trainable_stages]:
        for module in stage:
            module.requires_grad_(False)
    sizes = tuple((size,) for size in config.anchor_sizes)
    anchors = AnchorGenerator(sizes, (tuple(config.aspect_ratios),) * len(sizes))
    width = config.fpn_channels  # the mask head at the pyramid's width, not torchvision's 256
    network = MaskRCNN(
        Pyramid(body, channels, width),
        box_predictor=FastRCNNPredictor(1024, num_classes + 1),  # after the default 1024-wide box head
        mask_head=MaskRCNNHeads(width, (width,) * 4, 1),
        mask_predictor=MaskRCNNPredictor(width, width, num_classes + 1),
        min_size=config.network_input,  # with max_size equal, the longer side becomes this
        max_size=config.network_input,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=300,
        box_batch_size_per_image=128,
        box_detections_per_img=50,
    )
    return network, body


def predictions_from_output(output: dict[str, torch.Tensor], classes: list[ClassInfo]) -> list[Prediction]:
    """One image's torchvision detections as Predictions: labels 1..K become the classes' ids,
    masks are thresholded at 0.5 and kept as tight crops at their origin."""
    found = []
    masks = output["masks"][:, 0].cpu().numpy() >= MASK_THRESHOLD
    for box, score, label, mask in zip(
        output["boxes"].tolist(), output["scores"].tolist(), output["labels"].tolist(), masks, strict=True
    ):
        crop, origin = None, (0, 0)
        if mask.any():
            ys, xs = np.nonzero(mask)
            origin = (int(xs.min()), int(ys.min()))
            crop = mask[origin[1] : ys.max() + 1, origin[0] : xs.max() + 1]
        found.append(Prediction(tuple(box), float(score), classes[label - 1].id, crop, origin))
    return found


@dataclass
class MaskRCNNModel:
    """A Mask R-CNN with its settings and classes (a canonical dataset's, impurities included:
    a stain it finds is a stain, not a false alarm)."""

    config: MaskRCNNConfig
    classes: list[ClassInfo]
    network: nn.Module
    body: nn.Module
    device: str = "cpu"
    history: list[dict[str, Any]] = field(default_factory=list)
    trained_on: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def new(
        cls, config: MaskRCNNConfig, classes: list[ClassInfo], device: str = "cpu", pretrained: bool = True
    ) -> MaskRCNNModel:
        """A network whose random start (the pyramid and heads) is drawn from `config.seed`
        alone, whatever the process drew before, and which leaves the process's generator as it
        was: a domain-gap cell trained after a pretraining starts as one trained alone."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            network, body = build_network(config, len(classes), pretrained)
        return cls(config, list(classes), network.to(device), body, device)

    @torch.no_grad()
    def detect_tiles(self, tiles: list[np.ndarray], score_threshold: float = 0.05) -> list[list[Prediction]]:
        """Tile-local predictions of RGB uint8 tiles (canonical class ids)."""
        self.network.eval()
        self.network.roi_heads.score_thresh = score_threshold
        outputs = self.network([to_tensor(tile).to(self.device) for tile in tiles])
        return [predictions_from_output(output, self.classes) for output in outputs]

    def predict(self, image: np.ndarray, score_threshold: float = 0.05, batch: int = 4) -> list[Prediction]:
        """Predictions of one RGB image of any size: the weights' tiles, merged across tiles."""
        tiling = self.config.tiling
        return detect_tiled(
            image, lambda tiles: self.detect_tiles(tiles, score_threshold), tiling.tile, tiling.overlap, batch
        )

    def checkpoint(self) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json"),
            "classes": [c.to_dict() for c in self.classes],
            "state_dict": self.network.state_dict(),
            "history": self.history,
            "trained_on": self.trained_on,
        }

    def save(self, path: Path, finished: bool = True) -> Path:
        return WEIGHTS.save(self.checkpoint(), path, finished)

    @classmethod
    def load(cls, path: Path, device: str = "cpu", **overrides: Any) -> MaskRCNNModel:
        """Weights written by `train pretrain|finetune maskrcnn`; `overrides` change training
        settings (not the network's)."""
        data = WEIGHTS.read(path)
        fixed = sorted(set(overrides) & set(MaskRCNNConfig().network_setup()))
        if fixed:
            raise ModelError(f"{path}: fine-tuning keeps the network; cannot change {', '.join(fixed)}")
        config = MaskRCNNConfig.of(f"{path}: settings", **{**data["config"], **overrides})
        model = cls.new(config, [ClassInfo(**c) for c in data["classes"]], device, pretrained=False)
        try:
            model.network.load_state_dict(data["state_dict"], strict=True)
        except RuntimeError as error:
            first = " ".join(str(error).splitlines()[:2])
            what = f"a Mask R-CNN on {config.backbone}"
            raise ModelError(f"{path}: its tensors do not fit {what} ({first})") from None
        model.history, model.trained_on = list(data["history"]), list(data["trained_on"])
        return model


def is_maskrcnn_file(path: Path) -> bool:
    """Whether `path` holds Mask R-CNN weights (a cheap check for `evaluate detector`)."""
    try:
        WEIGHTS.read(path, unfinished=True)  # an unfinished one is refused by `load`, by name
    except ModelError:
        return False
    return True
