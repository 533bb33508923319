"""What every renderer speaks (Blender's and the numpy raster view): no bpy here, so the raster
view, the render loop and tests use it without Blender."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from synth.layers import SurfaceMaps
from synth.scene import SceneSpec


@dataclass
class RenderResult:
    rgb: np.ndarray  # (H, W, 3) uint8, sRGB
    instance_ids: np.ndarray  # (H, W) uint16, 0 = none (background or unlabelled surface)
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    # One sRGB image per light set-up of the spec's burst, in its order (rgb is the first);
    # empty for a spec without bursts.
    bursts: list[np.ndarray] = field(default_factory=list)


class Renderer(Protocol):
    """Realises a spec from its maps; a burst spec once per light set-up, the maps and
    geometry set up once."""

    def render(self, spec: SceneSpec, maps: SurfaceMaps) -> RenderResult: ...


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Scene-linear RGB → 8-bit sRGB, clipped to [0, 1] first (Blender's 'Standard' view
    transform), so both renderers encode alike."""
    x = np.clip(linear, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.rint(srgb * 255).astype(np.uint8)
