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
import numba
import numpy as np

from synth.config import SceneConfig
from synth.errors import ConfigError
from synth.layers import SurfaceMaps, Window, perlin, window
from synth.photo import photo_crop
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


@numba.vectorize(["float64(int64, int64)", "float64(float64, int64)"], cache=True)
def thread_random(index: int, salt: int) -> float:
    """A uniform value in [0, 1) per integer thread index (a SplitMix64 hash), so a thread keeps
    its tone and thickness along its whole length. A ufunc (a float index is truncated), also
    callable in compiled loops."""
    z = np.uint64(np.int64(index)) + np.uint64(salt)
    z *= np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.float64((z ^ (z >> np.uint64(31))) >> np.uint64(11)) / 2.0**53


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

    The lattice values are hashed once per point; `interpolate` blends the four around each
    texel in one compiled pass."""
    iu, iv = np.floor(u[0]), np.floor(v[:, 0])
    su, sv = u[0] - iu, v[:, 0] - iv
    cols, left, right = lattice_cells(iu)
    rows, upper, lower = lattice_cells(iv)
    lattice = thread_random(lattice_key(cols[None, :], rows[:, None]), salt)
    return interpolate(lattice, left, right, su * su * (3 - 2 * su), upper, lower, sv * sv * (3 - 2 * sv))


@numba.njit(cache=True, nogil=True)
def interpolate(
    lattice: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    across: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    down: np.ndarray,
) -> np.ndarray:
    """2 x lerp(lerp(top corners), lerp(bottom corners)) - 1 per texel (row r, column c), the
    corners lattice[upper[r] or lower[r], left[c] or right[c]] and the weights across[c], down[r].
    Every lattice row is blended along the columns once; texel rows then blend two of those."""
    along = np.empty((lattice.shape[0], left.size))
    for k in range(lattice.shape[0]):
        for c in range(left.size):
            s = across[c]
            along[k, c] = lattice[k, left[c]] * (1 - s) + lattice[k, right[c]] * s
    out = np.empty((upper.size, left.size), np.float32)
    for r in range(upper.size):
        top, bottom, t = along[upper[r]], along[lower[r]], down[r]
        for c in range(left.size):
            out[r, c] = (top[c] * (1 - t) + bottom[c] * t) * 2 - 1
    return out


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
    fu, fv = (u - i).astype(np.float32), (v - j).astype(np.float32)  # what spans every texel: single
    warp_top = np.mod(i + weave.direction * j, weave.repeat) < weave.repeat - 1.5
    salt = material.seed

    def yarn(across: np.ndarray, along: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        a = (across * 2 - 1) / (0.8 + 0.14 * jitter)
        section = np.sqrt(np.maximum(1 - a * a, 0))
        arch = 0.55 + 0.45 * np.sin(along * math.pi)
        twist = np.sin((along * 4 + a * 1.2) * 2 * math.pi)
        return section * (arch + 0.06 * twist)

    warp_jitter = thread_random(i, salt).astype(np.float32)
    weft_jitter = thread_random(j, salt + 7919).astype(np.float32)
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
    total = value_noise(u, v, salt)
    for k in range(1, octaves):
        total += value_noise(u * 2**k, v * 2**k, salt + k) * np.float32(0.5**k)
    total /= np.float32(2 - 0.5 ** (octaves - 1))
    return total


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
    ground = material.pattern == "ground"
    marks = fractal_noise(x, y * (0.07 if ground else 0.02), salt, 3)
    bands = fractal_noise(x * 0.12, y * 0.004, salt + 10, 2)
    tone = marks * np.float32(grinding.marks) + bands * np.float32(grinding.bands)
    relief = marks * np.float32(0.5)
    if ground:
        add_ground_marks(
            tone,
            relief,
            value_noise(x * 0.6, y * 0.02, salt + 20),
            voronoi_edge(x * 0.6, y * 0.01, salt + 30),
            fractal_noise(x * 2.5, y * 2.5, salt + 40, 2),
            grinding.lines,
            grinding.grain,
        )
    tone = np.maximum(1 + np.float32(material.color_variation) * tone, 0)
    # Heights as the Blender view's (relief x bump x scale x 0.03 mm), in shade()'s unit.
    return tone, relief * np.float32(scale * 0.6)


@numba.njit(cache=True, nogil=True)
def add_ground_marks(
    tone: np.ndarray,
    relief: np.ndarray,
    streaks: np.ndarray,
    edge: np.ndarray,
    grain: np.ndarray,
    lines_contrast: float,
    grain_contrast: float,
) -> None:
    """Adds to tone and relief, in place, the sharp streaks (where the streak noise passes
    0.25-0.45), the grooves (within 0.06 of a Voronoi edge) and the grain."""
    for r in range(tone.shape[0]):
        for c in range(tone.shape[1]):
            sharp = smoothstep(streaks[r, c], 0.25, 0.45)
            groove = 1 - smoothstep(edge[r, c], 0.0, 0.06)
            tone[r, c] += lines_contrast * (sharp - groove) + grain_contrast * grain[r, c]
            relief[r, c] += sharp * 0.3 - groove * 0.5 + grain[r, c] * 0.5


def voronoi_edge(u: np.ndarray, v: np.ndarray, salt: int) -> np.ndarray:
    """Distance to the nearest Voronoi cell edge (F2 - F1) / 2, in cell units, of one jittered
    feature point per unit cell (the 3 x 3 neighbouring cells are searched), on u and v (a row
    and a column vector, or warped arrays of one shape).

    The feature points are hashed once per lattice cell; the search per texel is compiled
    (`nearest_two`), as nine passes of numpy over every texel cost ten times as much."""
    iu, iv = np.floor(u), np.floor(v)
    col0, row0 = int(iu.min()) - 1, int(iv.min()) - 1
    cols = np.arange(col0, int(iu.max()) + 2, dtype=np.float64)
    rows = np.arange(row0, int(iv.max()) + 2, dtype=np.float64)[:, None]
    key = lattice_key(cols, rows)
    point_x = cols + thread_random(key, salt)
    point_y = rows + thread_random(key, salt + 1)
    if u.shape[0] == 1 and v.shape[1] == 1:
        return nearest_two_on_grid(u[0], v[:, 0], point_x, point_y, col0, row0)
    shape = np.broadcast_shapes(u.shape, v.shape)
    return nearest_two(np.broadcast_to(u, shape), np.broadcast_to(v, shape), point_x, point_y, col0, row0)


@numba.njit(cache=True, nogil=True, inline="always")
def keep_nearest_two(d: float, first: float, second: float) -> tuple[float, float]:
    """The two smallest of (first, second, d), first <= second: branch-free, so it vectorises."""
    return min(first, d), min(second, max(first, d))


@numba.njit(cache=True, nogil=True)
def nearest_two(
    u: np.ndarray, v: np.ndarray, point_x: np.ndarray, point_y: np.ndarray, col0: int, row0: int
) -> np.ndarray:
    """(F2 - F1) / 2 per texel: F1, F2 the distances to the nearest two of the feature points
    (point_x, point_y)[row - row0, col - col0] of the 3 x 3 cells around it (squared distances
    are compared; the last bit of the edge may differ from comparing distances)."""
    edge = np.empty(u.shape, np.float32)
    for r in range(u.shape[0]):
        for c in range(u.shape[1]):
            x, y = u[r, c], v[r, c]
            cell_row, cell_col = int(math.floor(y)) - row0, int(math.floor(x)) - col0
            first = second = np.inf
            for i in range(cell_row - 1, cell_row + 2):
                for j in range(cell_col - 1, cell_col + 2):
                    dx, dy = x - point_x[i, j], y - point_y[i, j]
                    first, second = keep_nearest_two(dx * dx + dy * dy, first, second)
            edge[r, c] = (math.sqrt(second) - math.sqrt(first)) / 2
    return edge


@numba.njit(cache=True, nogil=True)
def nearest_two_on_grid(
    u: np.ndarray, v: np.ndarray, point_x: np.ndarray, point_y: np.ndarray, col0: int, row0: int
) -> np.ndarray:
    """`nearest_two` on the grid of columns u and rows v: the texels of a row that share a cell
    share its nine candidate points, loaded once, so the loop over them vectorises."""
    cell_col = np.empty(u.size, np.int64)
    for c in range(u.size):
        cell_col[c] = int(math.floor(u[c])) - col0
    edge = np.empty((v.size, u.size), np.float32)
    candidate_x, candidate_dy2 = np.empty(9), np.empty(9)
    for r in range(v.size):
        y = v[r]
        cell_row = int(math.floor(y)) - row0
        start = 0
        while start < u.size:
            cell, stop = cell_col[start], start + 1
            while stop < u.size and cell_col[stop] == cell:
                stop += 1
            k = 0
            for i in range(cell_row - 1, cell_row + 2):
                for j in range(cell - 1, cell + 2):
                    dy = y - point_y[i, j]
                    candidate_x[k], candidate_dy2[k] = point_x[i, j], dy * dy
                    k += 1
            for c in range(start, stop):
                x, first, second = u[c], np.inf, np.inf
                for k in range(9):
                    dx = x - candidate_x[k]
                    first, second = keep_nearest_two(dx * dx + candidate_dy2[k], first, second)
                edge[r, c] = (math.sqrt(second) - math.sqrt(first)) / 2
            start = stop
    return edge


@numba.vectorize(cache=True)
def smoothstep(x: float, lo: float, hi: float) -> float:
    """0 below lo, 1 above hi, a smooth cubic between: a ufunc, callable in compiled loops too."""
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
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
        # The fibre of each cell is drawn once per cell, then looked up by its texels.
        cols, col = np.unique(np.floor(x[0] / scale + shift), return_inverse=True)
        rows, row = np.unique(np.floor(y[:, 0] / scale + shift), return_inverse=True)
        cx, cy = cols[None, :], rows[:, None]
        key = cx * 7919 + cy * 104729 + layer * 15485863
        fx = (cx - shift + 0.25 + 0.5 * thread_random(key, 1)) * scale
        fy = (cy - shift + 0.25 + 0.5 * thread_random(key, 2)) * scale
        angle = thread_random(key, 3) * math.pi
        cells = np.ix_(row, col)
        dx, dy, cos, sin = x - fx[cells], y - fy[cells], np.cos(angle)[cells], np.sin(angle)[cells]
        along = dx * cos + dy * sin
        across = -dx * sin + dy * cos
        stroke = np.clip(1 - np.abs(across) / (0.1 * scale), 0, 1) * (np.abs(along) < 0.4 * scale)
        fibres += stroke * ((thread_random(key, 4) - 0.5) * 2)[cells]
    mottle = perlin(win.x_mm, win.y_mm, 0.3 / scale, (ox, oy))
    nap = value_noise(x * 6 / scale, y * 6 / scale, material.seed)
    variation = np.clip(fibres * 1.2 + mottle * 0.2 + nap * 1.0, -1.5, 1.5)
    return (1 + material.color_variation * variation).astype(np.float32), (nap * 0.3).astype(np.float32)


@dataclass
class Surface:
    """What shading needs of the surface on the visible window: everything but the lights."""

    height_mm: np.ndarray  # (h, w) the material's relief and the marks' heights
    texel_mm: float
    albedo: np.ndarray  # (h, w, 3) linear RGB: base colour x texture, or a photo surface's crop
    reflectance: np.ndarray  # (h, w) added to the albedo
    roughness: np.ndarray  # (h, w) the material's roughness plus the marks'


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
    """The material's texture and the maps' marks on window `win`: built once per sample,
    whatever the number of light set-ups. A photo surface's crop replaces the texture and its
    relief (the photo shows the relief already)."""
    material = spec.material
    height = maps.height_mm[win.rows, win.cols]
    if spec.photo is None:
        factor, base_height = base_texture(material, win)
        height = base_height * np.float32(material.bump_strength * 0.05) + height
        albedo = factor[..., None] * np.asarray(material.base_color, np.float32)
    else:
        albedo = photo_albedo(spec, win)
    return Surface(
        height_mm=height,
        texel_mm=maps.texel_mm,
        albedo=albedo,
        reflectance=maps.reflectance[win.rows, win.cols],
        roughness=maps.roughness[win.rows, win.cols] + np.float32(material.roughness),
    )


def shade(spec: SceneSpec, surf: Surface) -> np.ndarray:
    """Linear RGB radiance (h, w, 3) in texture space under the spec's lights."""
    lights = []
    for spot in spec.lights:
        az, el = math.radians(spot.azimuth_deg), math.radians(spot.elevation_deg)
        direction = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
        lights.append((*direction, spot.power_w / 15.0))
    return lambert(
        surf.height_mm,
        surf.texel_mm,
        surf.albedo,
        surf.reflectance,
        surf.roughness,
        np.array(lights, np.float64).reshape(-1, 4),
        2.0**spec.render.exposure,
    )


@numba.njit(cache=True, nogil=True)
def lambert(
    height: np.ndarray,
    texel_mm: float,
    albedo: np.ndarray,
    reflectance: np.ndarray,
    roughness: np.ndarray,
    lights: np.ndarray,
    gain: float,
) -> np.ndarray:
    """Diffuse light from distant white sources (direction x, y, z and strength per row of
    `lights`) on the normals of the height field (central differences, one-sided at the
    border), plus 0.15 ambient, times the albedo (linear RGB plus the reflectance change, in
    [0, 1]) and `gain`, plus a gloss of (1 - roughness) x
    0.08 times the light: one pass per texel."""
    rows, cols = height.shape
    out = np.empty((rows, cols, 3), np.float32)
    for r in range(rows):
        above, below = max(r - 1, 0), min(r + 1, rows - 1)
        for c in range(cols):
            left, right = max(c - 1, 0), min(c + 1, cols - 1)
            gx = (height[r, right] - height[r, left]) / ((right - left) * texel_mm)
            gy = (height[below, c] - height[above, c]) / ((below - above) * texel_mm)
            up = 1 / math.sqrt(gx * gx + gy * gy + 1)  # z of the unit normal (-gx, -gy, 1)
            light = 0.15
            for k in range(lights.shape[0]):
                facing = (lights[k, 2] - gx * lights[k, 0] - gy * lights[k, 1]) * up
                light += max(facing, 0.0) * lights[k, 3]
            gloss = min(max(1 - roughness[r, c], 0.0), 1.0) * 0.08 * light
            for k in range(3):
                changed = min(max(albedo[r, c, k] + reflectance[r, c], 0.0), 1.0)
                out[r, c, k] = changed * light * gain + gloss
    return out


def photo_albedo(spec: SceneSpec, win: Window) -> np.ndarray:
    """A photo surface's crop, stretched over the camera's view, sampled bilinearly at the
    window's texel centres (mirrored at the view's edge for the margin beyond it)."""
    assert spec.photo is not None
    crop = photo_crop(spec.photo)
    cam = spec.camera
    view_w, view_h = cam.view_mm
    x0 = spec.geometry.width_mm / 2 - view_w / 2
    y0 = spec.geometry.height_mm / 2 - view_h / 2
    map_x = (win.x_mm - x0) * (crop.shape[1] / view_w) - 0.5
    map_y = (win.y_mm - y0) * (crop.shape[0] / view_h) - 0.5
    shape = (map_y.shape[0], map_x.shape[1])
    return cv2.remap(
        crop,
        np.ascontiguousarray(np.broadcast_to(map_x, shape), np.float32),
        np.ascontiguousarray(np.broadcast_to(map_y, shape), np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


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
