"""Sequential PatchCore as an anomalib model, so anomalib's Engine can fit and test it.

    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from train.patchcore.lightning_model import SequentialPatchcore

    model = SequentialPatchcore(PatchCoreConfig(coreset_size=2048, epochs=3))
    engine = Engine()
    engine.fit(model=model, datamodule=MVTecAD(category="bottle"))
    engine.test(model=model, datamodule=MVTecAD(category="bottle"))
    model.to_coreset().save("bottle.safetensors")

Unlike anomalib's Patchcore, training steps feed patches straight into the coreset, so
memory does not grow with the dataset; epochs run until one changes nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch, InferenceBatch
from anomalib.models.components import AnomalibModule
from anomalib.pre_processing import PreProcessor
from torch import nn
from torchvision.transforms.v2 import Resize

from train.patchcore.config import PatchCoreConfig
from train.patchcore.coreset import SequentialCoreset
from train.patchcore.features import PatchFeatures, to_patches
from train.patchcore.model import Coreset, score_features


class SequentialPatchcoreModel(nn.Module):
    """Torch model: in training mode feeds the coreset, in eval mode scores images."""

    def __init__(self, config: PatchCoreConfig) -> None:
        super().__init__()
        self.config = config
        self.features = PatchFeatures(config)
        self.coreset = SequentialCoreset(config.coreset_size, self.features.dim, device="cpu")
        self.register_buffer("points", torch.empty(0, self.features.dim))

    def forward(self, images: torch.Tensor) -> int | InferenceBatch:
        """Images (B, 3, H, W) in [0, 1]: training → coreset changes; eval → predictions."""
        features = self.features(images)
        if self.training:
            if self.coreset.points.device != features.device:
                self.coreset = SequentialCoreset.from_points(
                    self.coreset.stored(), self.coreset.size, features.device
                )
            patches = to_patches(features)
            changes = sum(self.coreset.add(chunk) for chunk in patches.split(self.config.chunk_size))
            self.points = self.coreset.stored().clone()
            return changes
        if len(self.points) == 0:
            raise ValueError("the coreset is empty: fit the model first")
        maps = score_features(features, self.points, self.config)[:, None]
        return InferenceBatch(pred_score=maps.amax(dim=(1, 2, 3)), anomaly_map=maps)


class SequentialPatchcore(AnomalibModule):
    """Lightning/anomalib wrapper: epochs over the training data with early stop."""

    def __init__(
        self,
        config: PatchCoreConfig | None = None,
        pre_processor: nn.Module | bool = True,
        post_processor: nn.Module | bool = True,
        evaluator: Any = True,
        visualizer: Any = True,
    ) -> None:
        config = config or PatchCoreConfig()
        if pre_processor is True:
            # Our features normalise themselves: only resize here.
            pre_processor = PreProcessor(transform=Resize(config.image_size, antialias=True))
        super().__init__(pre_processor, post_processor, evaluator, visualizer)
        self.config = config
        self.model = SequentialPatchcoreModel(config)
        self.changes = 0

    @classmethod
    def from_coreset(cls, coreset: Coreset, **components: Any) -> SequentialPatchcore:
        """Wrap a trained coreset, e.g. to test it with anomalib's Engine."""
        module = cls(coreset.config, **components)
        coreset.check_setup(coreset.config, module.model.features.weights_id)
        module.model.coreset = SequentialCoreset.from_points(coreset.points)
        module.model.points = coreset.points.clone()
        return module

    def to_coreset(self) -> Coreset:
        return Coreset(
            points=self.model.points.detach().cpu().clone(),
            config=self.config,
            weights_id=self.model.features.weights_id,
            epochs=self.current_epoch + 1 if self._trainer else 0,
            datasets=[{"role": "pretrain", "source": "anomalib datamodule"}],
        )

    @staticmethod
    def configure_optimizers() -> None:
        return None

    def on_train_epoch_start(self) -> None:
        self.changes = 0

    def training_step(self, batch: Batch, *args, **kwargs) -> torch.Tensor:
        del args, kwargs
        self.changes += self.model(batch.image)
        self.log("coreset_changes", float(self.changes), prog_bar=True, on_step=True)
        return torch.tensor(0.0, requires_grad=True, device=self.device)  # no optimisation

    def on_train_epoch_end(self) -> None:
        if self.changes == 0:  # a fixed point: further epochs would change nothing
            self.trainer.should_stop = True

    def validation_step(self, batch: Batch, *args, **kwargs) -> Any:
        del args, kwargs
        return batch.update(**self.model(batch.image)._asdict())

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        return {
            "gradient_clip_val": 0,
            "max_epochs": self.config.epochs,
            "num_sanity_val_steps": 0,
            "devices": 1,
        }

    @property
    def learning_type(self) -> LearningType:
        return LearningType.ONE_CLASS
