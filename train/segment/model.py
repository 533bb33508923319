"""The segmenter: an smp network with a timm encoder, its weights file, and tiled inference.

The offline encoder weights are the ImageNet EfficientNet-Lite0 weights that PatchCore uses
(train/patchcore/features.py maps them onto timm's tf_efficientnet_lite0); smp is built with
`encoder_weights=None` and the mapped state dict is loaded into its timm encoder, so nothing is
downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synth.errors import ModelError
from synth.tiles import tile_grid
from train.backbones import normalised_batch
from train.checkpoints import WeightsFile
from train.patchcore.config import PACKAGE_WEIGHTS
from train.segment.config import SegmentConfig
from train.segment.data import pad_to

WEIGHTS = WeightsFile("defectsynth-segment-1", "segmenter", "train pretrain segment")
TILE_OVERLAP = 0.25
_ARCHITECTURES = {"unet": "Unet", "fpn": "FPN", "deeplabv3plus": "DeepLabV3Plus"}


def build_network(config: SegmentConfig, channels: int) -> nn.Module:
    """A fresh smp network; its encoder gets the offline ImageNet weights when configured."""
    import segmentation_models_pytorch as smp

    cls = getattr(smp, _ARCHITECTURES[config.architecture])
    try:
        network = cls(f"tu-{config.encoder}", encoder_weights=None, classes=channels)
    except Exception as error:
        what = f"{config.architecture} with encoder {config.encoder}"
        raise ModelError(f"cannot build {what}: {error}") from None
    if config.weights == PACKAGE_WEIGHTS:
        load_encoder_weights(network.encoder.model)
    return network


def load_encoder_weights(encoder: nn.Module) -> None:
    """Load the mapped EfficientNet-Lite0 ImageNet weights into smp's timm features model
    (which lacks the classifier head, so only its own tensors are taken)."""
    from safetensors.torch import load_file

    from train.patchcore.features import lite0_to_timm, package_weights_path

    path = package_weights_path()
    state = load_file(path) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)
    state = lite0_to_timm(state.get("state_dict", state))
    wanted = encoder.state_dict().keys()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise ModelError(f"encoder weights {path} miss {len(missing)} tensors, e.g. {missing[:3]}")
    encoder.load_state_dict({key: state[key] for key in wanted}, strict=True)


@dataclass
class Segmenter:
    """A trained network with its settings; `predict` fits evaluate.anomaly's Predictor."""

    config: SegmentConfig
    class_names: list[str]
    network: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    trained_on: list[dict] = field(default_factory=list)

    @classmethod
    def new(cls, config: SegmentConfig, class_names: list[str]) -> Segmenter:
        channels = len(class_names) if config.classes == "per_class" else 1
        return cls(config, list(class_names), build_network(config, channels).to(config.device))

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) float32 in [0, 1] -> the network's normalised input on its device."""
        return normalised_batch(images, self.config.mean, self.config.std, self.config.device)

    @torch.no_grad()
    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Sigmoid maps (C, H, W) of one RGB uint8 image of any size: overlapping tiles of the
        training size at native resolution (synth.tiles' grid), averaged where they meet."""
        self.network.eval()
        size = self.config.image_size
        height, width = image.shape[:2]
        padded = pad_to(image.astype(np.float32) / 255.0, size)
        tiles = tile_grid(padded.shape[1], padded.shape[0], size, TILE_OVERLAP)
        total = np.zeros((self.network.segmentation_head[0].out_channels, *padded.shape[:2]), np.float32)
        count = np.zeros(padded.shape[:2], np.float32)
        step = max(1, 2 * self.config.batch_size)
        for start in range(0, len(tiles), step):
            chunk = tiles[start : start + step]
            logits = self.network(self.to_tensor(np.stack([t.crop(padded) for t in chunk])))
            for tile, prob in zip(chunk, torch.sigmoid(logits).cpu().numpy(), strict=True):
                total[:, tile.y0 : tile.y1, tile.x0 : tile.x1] += prob
                count[tile.y0 : tile.y1, tile.x0 : tile.x1] += 1
        return (total / count)[:, :height, :width]

    def predict(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Defect probability maps (any defect class: the max over channels) and image scores
        (the map's maximum), in the shape evaluate.anomaly scores."""
        maps = [self.probabilities(image).max(axis=0) for image in images]
        return maps, np.array([float(m.max()) for m in maps])

    def checkpoint(self, resume: dict[str, Any] | None = None, recipe: dict | None = None) -> dict[str, Any]:
        """The file's content (WEIGHTS adds the format tag); `resume` (optimizer, schedule,
        epoch) while a run is unfinished, `recipe` (settings, data, start) so that a rerun knows
        whether the file is its own."""
        return {
            "config": self.config.to_dict(),
            "class_names": self.class_names,
            "state_dict": self.network.state_dict(),
            "history": self.history,
            "trained_on": self.trained_on,
            "resume": resume,
            "recipe": recipe,
        }

    def save(self, path: Path, resume: dict[str, Any] | None = None, recipe: dict | None = None) -> Path:
        return WEIGHTS.save(self.checkpoint(resume, recipe), path, finished=resume is None)

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> Segmenter:
        return cls.from_checkpoint(WEIGHTS.read(path), path, device)

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any], path: Path, device: str = "cpu") -> Segmenter:
        config = SegmentConfig.from_dict(data["config"], device=device, weights="none")
        model = cls.new(config, data["class_names"])
        try:
            model.network.load_state_dict(data["state_dict"], strict=True)
        except RuntimeError as error:
            first = str(error).splitlines()[:2]
            raise ModelError(
                f"{path}: its tensors do not fit a {config.architecture} with encoder {config.encoder} "
                f"({' '.join(first)})"
            ) from None
        model.config = SegmentConfig.from_dict(data["config"], device=device)
        model.history, model.trained_on = list(data["history"]), list(data["trained_on"])
        return model
