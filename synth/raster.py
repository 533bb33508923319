"""A fast numpy view of a SceneSpec: Lambert shading of the height maps, no path tracing.

It realises the same spec and maps as the Blender renderer, orders of magnitude faster and
without bpy, which makes it the renderer for quick previews, unit tests and CI experiments.
It is not photoreal: lights are distant white sources (no size, distance falloff or colour
temperature), no metallic reflections, no shadows. Its labels are exact only for a flat plate
seen straight down, so `check_realisable` refuses configs that ask for a tilted or rolled
camera or a bent tile instead of showing them flat.
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from synth.config import SceneConfig
from synth.errors import ConfigError
from synth.layers import SurfaceMaps, Window, perlin, window
from synth.rendering import RenderResult, to_srgb8
from synth.scene import MaterialSpec, SceneSpec


def unrealisable(config: SceneConfig) -> list[str]:
    """The config fields (with their ranges) asking for geometry this view would draw wrongly."""

    def shown(name: str, bounds: tuple[float, float]) -> str:
        return f"{name} [{bounds[0]:g}, {bounds[1]:g}]"

    asked = []
    if config.geometry.shape == "curved_tile" and config.geometry.bend_deg[1] > 0:
        asked.append(shown("geometry.bend_deg", config.geometry.bend_deg))
    for name in ("camera_tilt_deg", "camera_roll_deg"):
        bounds = getattr(config.randomization, name)
        if bounds[1] > 0:
            asked.append(shown(f"randomization.{name}", bounds))
    return asked


def check_realisable(config: SceneConfig, source: str) -> None:
    """Refuse, before any work, a config the raster view cannot show (see `unrealisable`)."""
    asked = unrealisable(config)
    if asked:
        raise ConfigError(
            f"{source}: the raster renderer shows a flat plate seen straight down and cannot "
            f"realise {', '.join(asked)}; use --renderer cycles"
        )


def base_texture(material: MaterialSpec, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """(albedo variation in [-1, 1], height in [0, 1]) of the bare material."""
    scale = material.scale_mm
    seed_offset = (material.seed % 1000 * 0.731, material.seed % 977 * 0.377)
    x, y = win.x_mm, win.y_mm
    if material.family == "leather":
        cells = np.abs(perlin(x, y, 1.0 / scale, seed_offset))
        height = 1.0 - np.clip(cells * 3.0, 0, 1)  # raised grain, creases between cells
        variation = perlin(x, y, 0.15 / scale, seed_offset[::-1]) * 2
    elif material.family == "textile":
        phase_x, phase_y = 2 * math.pi * x / scale, 2 * math.pi * y / scale
        shift = phase_y if material.pattern == "twill" else 0.0
        warp = 0.5 + 0.5 * np.sin(phase_x + shift) * np.sign(np.sin(phase_y / 2 + 0.3))
        height = warp * (0.5 + 0.5 * np.abs(np.sin(phase_y)))
        variation = perlin(x, y, 0.5 / scale, seed_offset) * 2
    else:  # metal
        stretch = 0.02  # marks are ~50x longer than wide
        if material.pattern == "ground":  # vertical grinding marks
            streaks = perlin(x, y * stretch, 4.0 / scale, seed_offset)
        else:  # brushed along x
            streaks = perlin(x * stretch, y, 4.0 / scale, seed_offset)
        height = 0.5 + streaks
        variation = streaks * 0.5
    return np.clip(variation, -1, 1).astype(np.float32), height.astype(np.float32)


def shade(spec: SceneSpec, maps: SurfaceMaps) -> np.ndarray:
    """Linear RGB radiance in texture space."""
    whole = window(maps.shape, maps.texel_mm, (0.0, 0.0, spec.geometry.width_mm, spec.geometry.height_mm))
    assert whole is not None
    material = spec.material
    variation, base_height = base_texture(material, whole)
    height = base_height * material.bump_strength * 0.05 + maps.height_mm
    gy, gx = np.gradient(height, maps.texel_mm)
    normal = np.dstack([-gx, -gy, np.ones_like(gx)])
    normal /= np.linalg.norm(normal, axis=2, keepdims=True)
    light = np.zeros(maps.shape, np.float32) + 0.15
    for spot in spec.lights:
        az, el = math.radians(spot.azimuth_deg), math.radians(spot.elevation_deg)
        direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        light += np.clip(normal @ direction, 0, None) * spot.power_w / 15.0
    albedo = (
        np.asarray(material.base_color, np.float32) * (1 + material.color_variation * variation)[..., None]
    )
    albedo = np.clip(albedo + maps.reflectance[..., None], 0, 1)
    gloss = np.clip(1 - material.roughness - maps.roughness, 0, 1)[..., None] * 0.08
    return albedo * light[..., None] * 2**spec.render.exposure + gloss * light[..., None]


def image_sampling(spec: SceneSpec, maps: SurfaceMaps) -> tuple[np.ndarray, np.ndarray]:
    """Texel coordinates (map_x, map_y) of every image pixel centre (top-down camera)."""
    cam = spec.camera
    cx, cy = spec.geometry.width_mm / 2, spec.geometry.height_mm / 2
    u = (np.arange(cam.width_px) + 0.5 - cam.width_px / 2) * cam.mm_per_px + cx
    v = (np.arange(cam.height_px) + 0.5 - cam.height_px / 2) * cam.mm_per_px + cy
    map_x = np.broadcast_to((u / maps.texel_mm - 0.5)[None, :], (cam.height_px, cam.width_px))
    map_y = np.broadcast_to((v / maps.texel_mm - 0.5)[:, None], (cam.height_px, cam.width_px))
    return np.ascontiguousarray(map_x, np.float32), np.ascontiguousarray(map_y, np.float32)


class RasterRenderer:
    """Same interface as `synth.blender.BlenderRenderer`: `render(spec, maps)`."""

    def render(self, spec: SceneSpec, maps: SurfaceMaps) -> RenderResult:
        start = time.perf_counter()
        radiance = shade(spec, maps)
        map_x, map_y = image_sampling(spec, maps)
        # Average the texels under each pixel (anti-aliasing), then resample.
        factor = max(1, spec.render.texels_per_px)
        smooth = cv2.blur(radiance, (factor, factor)) if factor > 1 else radiance
        rgb = cv2.remap(smooth, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        ids = cv2.remap(
            maps.instance_ids,
            np.round(map_x),
            np.round(map_y),
            cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
        )
        return RenderResult(to_srgb8(rgb), ids.astype(np.uint16), {"total": time.perf_counter() - start})
