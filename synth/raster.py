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
from dataclasses import dataclass

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
    """(albedo factor, height in units of bump_strength x 0.05 mm) of the bare material."""
    if material.weave is not None:
        return yarn_weave(material, win)
    if material.pattern == "suede":
        return suede(material, win)
    if material.grain is not None:
        return voronoi_grain(material, win)
    if material.grinding is not None:
        return grinding_marks(material, win)
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
    variation = np.clip(variation, -1, 1).astype(np.float32)
    return 1 + material.color_variation * variation, height.astype(np.float32)


def thread_random(index: np.ndarray, salt: int) -> np.ndarray:
    """A uniform value in [0, 1) per integer thread index (a SplitMix64 hash), so a thread keeps
    its tone and thickness along its whole length."""
    z = index.astype(np.int64).astype(np.uint64)
    z += np.uint64(salt)
    z *= np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    z >>= np.uint64(11)
    return z.astype(np.float64) / 2.0**53


def lattice_key(iu: np.ndarray, iv: np.ndarray) -> np.ndarray:
    """One integer per lattice point (iu, iv), the input of `thread_random`."""
    return iu.astype(np.int64) * 73856093 + iv.astype(np.int64) * 19349663


def lattice_cells(i: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct lattice coordinates that i and i + 1 take, and the index of each of i and
    i + 1 among them: the lattice is hashed once per point, not once per texel and corner."""
    cells = np.unique(np.concatenate([i, i + 1]))
    return cells, np.searchsorted(cells, i), np.searchsorted(cells, i + 1)


def value_noise(u: np.ndarray, v: np.ndarray, salt: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] with one random value per integer lattice point, on the
    grid of a row vector u (1, w) and a column vector v (h, 1): the vectorised stand-in for
    Perlin noise where the lattice is as fine as the texels (fibres, fuzz).

    Separable: the lattice values are hashed once, interpolated along u for every lattice row,
    then along v; the arithmetic per texel is that of interpolating four hashed corners."""
    iu, iv = np.floor(u[0]), np.floor(v[:, 0])
    su, sv = u[0] - iu, v[:, 0] - iv
    su, sv = su * su * (3 - 2 * su), sv * sv * (3 - 2 * sv)
    cols, left, right = lattice_cells(iu)
    rows, upper, lower = lattice_cells(iv)
    lattice = thread_random(lattice_key(cols[None, :], rows[:, None]), salt)
    along = lattice[:, left] * (1 - su) + lattice[:, right] * su  # (lattice rows, w)
    top = along[upper]
    top *= (1 - sv)[:, None]
    bottom = along[lower]
    bottom *= sv[:, None]
    top += bottom
    top *= 2
    top -= 1
    return top


def yarn_weave(material: MaterialSpec, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """Rounded yarns crossing over and under, as `synth.blender.materials.textile` draws them:
    warp along y at pitch scale_mm, weft along x at weft_ratio x that, the warp on top where
    (i + direction·j) mod repeat < repeat - 1.5, per-thread tone and thickness, a mottle of
    about 1 mm (uneven yarn), fibres along each yarn and fuzz."""
    weave = material.weave
    assert weave is not None
    ox, oy = material.offset_mm
    u = (win.x_mm + ox) / material.scale_mm
    v = (win.y_mm + oy) / (material.scale_mm * weave.weft_ratio)
    i, j = np.floor(u), np.floor(v)
    fu, fv = u - i, v - j
    warp_top = np.mod(i + weave.direction * j, weave.repeat) < weave.repeat - 1.5
    salt = material.seed

    def yarn(across: np.ndarray, along: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        a = (across * 2 - 1) / (0.8 + 0.14 * jitter)
        section = np.sqrt(np.maximum(1 - a * a, 0))
        arch = 0.55 + 0.45 * np.sin(along * math.pi)
        twist = np.sin((along * 4 + a * 1.2) * 2 * math.pi)
        return section * (arch + 0.06 * twist)

    warp_jitter, weft_jitter = thread_random(i, salt), thread_random(j, salt + 7919)
    h = np.where(warp_top, yarn(fu, fv, warp_jitter), yarn(fv, fu, weft_jitter))
    # Fibres and fuzz in about the range of Blender's noise texture minus 0.5.
    fibres = np.where(warp_top, value_noise(u * 9, v * 0.8, salt + 1), value_noise(u * 0.8, v * 9, salt + 2))
    fibres = fibres * 0.25
    fuzz = value_noise(u * 14, v * 14 * weave.weft_ratio, salt + 3) * 0.25
    relief = h + fibres * 0.25 + fuzz * 0.12
    tone = 1 + (np.where(warp_top, warp_jitter, weft_jitter) - 0.5) * 2 * material.color_variation
    if weave.mottle:
        x, y = win.x_mm + ox, win.y_mm + oy  # a cloudiness of about 1 mm, as Blender's
        cloud = value_noise(x / 0.6, y / 0.6, salt + 4) + 0.5 * value_noise(x / 0.3, y / 0.3, salt + 5)
        tone = tone * (1 + weave.mottle * cloud)
    gap = weave.gap_shade
    shade = (gap + (1 - gap) * h) * (1 + 0.5 * fibres) * np.where(warp_top, 1.0, weave.weft_shade)
    # Heights as the Blender view's (relief x bump x scale x 0.35 mm), in shade()'s unit.
    return (tone * shade * 1.5).astype(np.float32), (relief * material.scale_mm * 7.0).astype(np.float32)


def fractal_noise(u: np.ndarray, v: np.ndarray, salt: int, octaves: int) -> np.ndarray:
    """Value noise summed over octaves (each twice as fine, half as strong), in about [-1, 1]."""
    total = sum(value_noise(u * 2**k, v * 2**k, salt + k) * 0.5**k for k in range(octaves))
    return total / (2 - 0.5 ** (octaves - 1))


def grinding_marks(material: MaterialSpec, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """Ground or brushed metal as `synth.blender.materials.metal` draws it: fine marks along y,
    scale_mm apart, and slow bands along them; ground adds sparse sharp bright streaks, dark
    grooves (thin Voronoi edges stretched along y) and an isotropic sintered grain. The marks,
    bands, lines (streaks and grooves) and grain scale the albedo by material.grinding's contrasts."""
    grinding = material.grinding
    assert grinding is not None
    scale, salt = material.scale_mm, material.seed
    ox, oy = material.offset_mm
    x, y = (win.x_mm + ox) / scale, (win.y_mm + oy) / scale  # in mark spacings
    ground = float(material.pattern == "ground")
    marks = fractal_noise(x, y * (0.07 if ground else 0.02), salt, 3)
    bands = fractal_noise(x * 0.12, y * 0.004, salt + 10, 2)
    sharp = smoothstep(value_noise(x * 0.6, y * 0.02, salt + 20), 0.25, 0.45) * ground
    groove = (1 - smoothstep(voronoi_edge(x * 0.6, y * 0.01, salt + 30), 0.0, 0.06)) * ground
    grain = fractal_noise(x * 2.5, y * 2.5, salt + 40, 2) * ground
    lines = sharp - groove
    tone = 1 + material.color_variation * (
        grinding.marks * marks + grinding.bands * bands + grinding.lines * lines + grinding.grain * grain
    )
    relief = marks * 0.5 + sharp * 0.3 - groove * 0.5 + grain * 0.5
    # Heights as the Blender view's (relief x bump x scale x 0.03 mm), in shade()'s unit.
    return np.clip(tone, 0, None).astype(np.float32), (relief * scale * 0.6).astype(np.float32)


def voronoi_edge(u: np.ndarray, v: np.ndarray, salt: int) -> np.ndarray:
    """Distance to the nearest Voronoi cell edge (F2 - F1) / 2, in cell units, of one jittered
    feature point per unit cell (the 3 x 3 neighbouring cells are searched).

    The feature points are hashed once per cell of the lattice covering u and v (a row and a
    column vector, or warped arrays of one shape), then looked up per texel and neighbour."""
    iu, iv = np.floor(u), np.floor(v)
    col0, row0 = int(iu.min()) - 1, int(iv.min()) - 1
    cols = np.arange(col0, int(iu.max()) + 2, dtype=np.float64)
    rows = np.arange(row0, int(iv.max()) + 2, dtype=np.float64)[:, None]
    key = lattice_key(cols, rows)
    point_x = (cols + thread_random(key, salt)).ravel()
    point_y = (rows + thread_random(key, salt + 1)).ravel()
    cell = ((iv - row0) * cols.size + (iu - col0)).astype(np.intp)
    first = np.full(cell.shape, np.inf)
    second = np.full(cell.shape, np.inf)
    for dv in (-1, 0, 1):
        for du in (-1, 0, 1):
            neighbour = cell + (dv * cols.size + du)
            d = np.hypot(u - point_x[neighbour], v - point_y[neighbour])
            np.minimum(second, d, out=second)
            np.copyto(second, first, where=d < first)
            np.minimum(first, d, out=first)
    return (second - first) / 2


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)


def voronoi_grain(material: MaterialSpec, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """A leather grain as `synth.blender.materials.leather` draws it: noise-warped Voronoi cells
    of scale_mm with rounded tops and creases between them, a finer wrinkle network (cells 2.7
    times smaller) and a slow mottle; the creases darken the albedo by grain.contrast."""
    grain = material.grain
    assert grain is not None
    scale = material.scale_mm
    ox, oy = material.offset_mm
    x, y = win.x_mm + ox, win.y_mm + oy
    warp = 0.9 * scale
    px = x + perlin(win.x_mm, win.y_mm, 0.35 / scale, (ox, oy)) * warp
    py = y + perlin(win.x_mm, win.y_mm, 0.35 / scale, (oy + 17, ox + 5)) * warp
    salt = material.seed
    edge = voronoi_edge(px / scale, py / scale, salt)
    fine = smoothstep(voronoi_edge(px * 2.7 / scale, py * 2.7 / scale, salt + 2), 0.0, 0.08)
    dome, crease = smoothstep(edge, 0.0, 0.35), smoothstep(edge, 0.0, grain.crease_width)
    relief = dome * 0.6 + crease * 0.3 + fine * 0.2
    cavity = 0.3 + crease * 0.4 + fine * 0.15 + dome * 0.15
    cavity = 0.85 + (cavity - 0.85) * grain.contrast  # 0.85: a cavity's mean
    mottle = perlin(win.x_mm, win.y_mm, 0.08 / scale, (oy, ox)) * 0.5
    tone = 1 + mottle * material.color_variation * 5
    # Heights as the Blender view's (relief x bump x scale x 0.25 mm), in shade()'s unit.
    return (tone * cavity * 1.6).astype(np.float32), (relief * scale * 5.0).astype(np.float32)


def suede(material: MaterialSpec, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """A napped (suede, nubuck) leather: short fibre ends in every direction over a fine
    mottle, little relief; scale_mm is the fibre length. One fibre per jittered cell of
    that size, in two offset layers, as `synth.blender.materials.leather` draws it."""
    scale = material.scale_mm
    ox, oy = material.offset_mm
    x, y = win.x_mm + ox, win.y_mm + oy
    fibres = np.zeros(np.broadcast(x, y).shape)
    for layer, shift in enumerate((0.0, 0.5)):
        cx, cy = np.floor(x / scale + shift), np.floor(y / scale + shift)
        key = cx * 7919 + cy * 104729 + layer * 15485863
        fx = (cx - shift + 0.25 + 0.5 * thread_random(key, 1)) * scale
        fy = (cy - shift + 0.25 + 0.5 * thread_random(key, 2)) * scale
        angle = thread_random(key, 3) * math.pi
        along = (x - fx) * np.cos(angle) + (y - fy) * np.sin(angle)
        across = -(x - fx) * np.sin(angle) + (y - fy) * np.cos(angle)
        stroke = np.clip(1 - np.abs(across) / (0.1 * scale), 0, 1) * (np.abs(along) < 0.4 * scale)
        fibres += stroke * (thread_random(key, 4) - 0.5) * 2
    mottle = perlin(win.x_mm, win.y_mm, 0.3 / scale, (ox, oy))
    nap = value_noise(x * 6 / scale, y * 6 / scale, material.seed)
    variation = np.clip(fibres * 1.2 + mottle * 0.2 + nap * 1.0, -1.5, 1.5)
    return (1 + material.color_variation * variation).astype(np.float32), (nap * 0.3).astype(np.float32)


@dataclass
class Surface:
    """What shading needs of the surface, in texture space: everything but the lights."""

    normal: np.ndarray  # (h, w, 3) unit normals
    albedo: np.ndarray  # (h, w, 3) linear RGB
    gloss: np.ndarray  # (h, w, 1)


def visible(spec: SceneSpec, maps: SurfaceMaps) -> Window:
    """The texels the camera sees, with a margin for the gradient, the anti-aliasing blur and the
    bilinear resampling: texture and shading are computed there only, not on the whole plate."""
    map_x, map_y = image_sampling(spec, maps)
    margin = spec.render.texels_per_px + 2
    rows = max(0, math.floor(map_y[0, 0]) - margin), math.ceil(map_y[-1, 0]) + margin + 1
    cols = max(0, math.floor(map_x[0, 0]) - margin), math.ceil(map_x[0, -1]) + margin + 1
    t = maps.texel_mm
    box = (cols[0] * t, rows[0] * t, (cols[1] - 1) * t, (rows[1] - 1) * t)
    win = window(maps.shape, t, box)
    assert win is not None
    return win


def surface(spec: SceneSpec, maps: SurfaceMaps, win: Window) -> Surface:
    """The material's texture and the maps' marks as normals, albedo and gloss on window `win`:
    built once per sample, whatever the number of light set-ups."""
    material = spec.material
    factor, base_height = base_texture(material, win)
    height = base_height * material.bump_strength * 0.05 + maps.height_mm[win.rows, win.cols]
    gy, gx = np.gradient(height, maps.texel_mm)
    normal = np.dstack([-gx, -gy, np.ones_like(gx)])
    normal /= np.linalg.norm(normal, axis=2, keepdims=True)
    albedo = np.asarray(material.base_color, np.float32) * factor[..., None]
    albedo = np.clip(albedo + maps.reflectance[win.rows, win.cols, None], 0, 1)
    gloss = np.clip(1 - material.roughness - maps.roughness[win.rows, win.cols], 0, 1)[..., None] * 0.08
    return Surface(normal, albedo, gloss)


def shade(spec: SceneSpec, surf: Surface) -> np.ndarray:
    """Linear RGB radiance in texture space under the spec's lights."""
    light = np.zeros(surf.normal.shape[:2], np.float32) + 0.15
    for spot in spec.lights:
        az, el = math.radians(spot.azimuth_deg), math.radians(spot.elevation_deg)
        direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        light += np.clip(surf.normal @ direction, 0, None) * spot.power_w / 15.0
    return surf.albedo * light[..., None] * 2**spec.render.exposure + surf.gloss * light[..., None]


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
        win = visible(spec, maps)
        surf = surface(spec, maps, win)
        map_x, map_y = image_sampling(spec, maps)
        # Average the texels under each pixel (anti-aliasing), then resample.
        factor = max(1, spec.render.texels_per_px)
        images = []
        for setup in spec.setups():
            radiance = shade(setup, surf)
            smooth = cv2.blur(radiance, (factor, factor)) if factor > 1 else radiance
            rgb = cv2.remap(
                smooth,
                map_x - np.float32(win.cols.start),
                map_y - np.float32(win.rows.start),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
            )
            images.append(to_srgb8(rgb))
        ids = cv2.remap(
            maps.instance_ids,
            np.round(map_x),
            np.round(map_y),
            cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
        )
        timings = {"total": time.perf_counter() - start}
        return RenderResult(images[0], ids.astype(np.uint16), timings, images if spec.bursts else [])
