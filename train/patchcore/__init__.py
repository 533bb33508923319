"""Sequential PatchCore: anomaly detection from good images in fixed memory.

from train.patchcore import PatchCoreConfig, pretrain, finetune, meld, Coreset
coreset = pretrain("data/leather", PatchCoreConfig(coreset_size=2048))
coreset.save("leather.safetensors")
maps, scores = Coreset.load("leather.safetensors").predict(images)
"""

from train.patchcore.config import IncompatibleCoresetError, PatchCoreConfig, PatchCoreError
from train.patchcore.coreset import SequentialCoreset
from train.patchcore.data import list_images
from train.patchcore.model import Coreset, finetune, meld, pretrain

__all__ = [
    "Coreset",
    "IncompatibleCoresetError",
    "PatchCoreConfig",
    "PatchCoreError",
    "SequentialCoreset",
    "finetune",
    "list_images",
    "meld",
    "pretrain",
]
