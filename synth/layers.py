"""Texture-space surface maps (numpy + noise): what stains and defects do to the surface.

`build_maps(spec)` rasterises every stain and defect of a `SceneSpec` onto a grid covering
the plate: a reflectance change, a roughness change, a height field (mm) and the instance /
class ids that become the labels. Renderers (Blender, or the numpy raster view) consume these
maps; the material's own base texture (grain, weave, grinding) is the renderer's business.

Grid convention: texel (row r, col c) covers plate points
x ∈ [c·t, (c+1)·t), y ∈ [r·t, (r+1)·t) with t = `texel_mm`; values are sampled at texel centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from synth.scene import LINEAR_KINDS, MarkSpec, SceneSpec, StainSpec

# Perlin noise is smooth at scale 1/f, so sampling it every 1/(10f) mm and interpolating
# bilinearly keeps the error below 0.02 (noise range about ±0.7, see tests) at a fraction
# of the cost: a stain edge moves by less than 0.02·A mm.
NOISE_SAMPLES_PER_PERIOD = 10

# Kinds drawn as a stroke of some width along a polyline.
STROKE_KINDS = LINEAR_KINDS | {"missing_thread", "uneven"}


@dataclass
class SurfaceMaps:
    texel_mm: float
    reflectance: np.ndarray  # float32, added to the base albedo
    roughness: np.ndarray  # float32, added to the base roughness
    height_mm: np.ndarray  # float32, surface displacement (negative = groove, pit)
    instance_ids: np.ndarray  # uint16, 0 = none
    class_ids: np.ndarray  # uint8, 0 = background

    @property
    def shape(self) -> tuple[int, int]:
        return self.instance_ids.shape  # type: ignore[return-value]

    @classmethod
    def empty(cls, shape: tuple[int, int], texel_mm: float) -> SurfaceMaps:
        return cls(
            texel_mm=texel_mm,
            reflectance=np.zeros(shape, np.float32),
            roughness=np.zeros(shape, np.float32),
            height_mm=np.zeros(shape, np.float32),
            instance_ids=np.zeros(shape, np.uint16),
            class_ids=np.zeros(shape, np.uint8),
        )


@dataclass(frozen=True)
class Window:
    """A rectangle of texels with the plate coordinates (mm) of their centres."""

    rows: slice
    cols: slice
    x_mm: np.ndarray  # (1, w)
    y_mm: np.ndarray  # (h, 1)


def texel_size(spec: SceneSpec) -> float:
    return spec.camera.mm_per_px / spec.render.texels_per_px


def map_shape(spec: SceneSpec, texel_mm: float) -> tuple[int, int]:
    g = spec.geometry
    return math.ceil(g.height_mm / texel_mm - 1e-9), math.ceil(g.width_mm / texel_mm - 1e-9)


def window(
    shape: tuple[int, int], texel_mm: float, box_mm: tuple[float, float, float, float]
) -> Window | None:
    """Texels whose centres may fall inside `box_mm` = (x0, y0, x1, y1); None when empty."""
    x0, y0, x1, y1 = box_mm
    c0, c1 = max(0, math.floor(x0 / texel_mm)), min(shape[1], math.ceil(x1 / texel_mm) + 1)
    r0, r1 = max(0, math.floor(y0 / texel_mm)), min(shape[0], math.ceil(y1 / texel_mm) + 1)
    if c0 >= c1 or r0 >= r1:
        return None
    x = ((np.arange(c0, c1) + 0.5) * texel_mm)[None, :]
    y = ((np.arange(r0, r1) + 0.5) * texel_mm)[:, None]
    return Window(slice(r0, r1), slice(c0, c1), x, y)


# Ken Perlin's reference permutation (Improved Noise, 2002), twice over so that hashed indices
# never wrap; `improved_perlin` indexes it as the `noise` package's pnoise2 does.
# fmt: off
PERMUTATION = np.array(
    [
        151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30, 69,
        142, 8, 99, 37, 240, 21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94, 252, 219,
        203, 117, 35, 11, 32, 57, 177, 33, 88, 237, 149, 56, 87, 174, 20, 125, 136, 171, 168, 68, 175,
        74, 165, 71, 134, 139, 48, 27, 166, 77, 146, 158, 231, 83, 111, 229, 122, 60, 211, 133, 230,
        220, 105, 92, 41, 55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161, 1, 216, 80, 73, 209, 76,
        132, 187, 208, 89, 18, 169, 200, 196, 135, 130, 116, 188, 159, 86, 164, 100, 109, 198, 173,
        186, 3, 64, 52, 217, 226, 250, 124, 123, 5, 202, 38, 147, 118, 126, 255, 82, 85, 212, 207, 206,
        59, 227, 47, 16, 58, 17, 182, 189, 28, 42, 223, 183, 170, 213, 119, 248, 152, 2, 44, 154, 163,
        70, 221, 153, 101, 155, 167, 43, 172, 9, 129, 22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232,
        178, 185, 112, 104, 218, 246, 97, 228, 251, 34, 242, 193, 238, 210, 144, 12, 191, 179, 162, 241,
        81, 51, 145, 235, 249, 14, 239, 107, 49, 192, 214, 31, 181, 199, 106, 157, 184, 84, 204, 176,
        115, 121, 50, 45, 127, 4, 150, 254, 138, 236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141, 128,
        195, 78, 66, 215, 61, 156, 180,
    ]
    * 2,
    np.intp,
)
# fmt: on
# The 2D parts of the 16 gradient directions, indexed by hash & 15.
GRADIENT_X = np.array([1, -1, 1, -1, 1, -1, 1, -1, 0, 0, 0, 0, 1, -1, 0, 0], np.float32)
GRADIENT_Y = np.array([1, 1, -1, -1, 0, 0, 0, 0, 1, -1, 1, -1, 0, 0, -1, 1], np.float32)
NOISE_REPEAT = np.float32(1024)  # pnoise2's default period, in lattice units


def improved_perlin(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Perlin's improved noise at every (x, y) of a row vector x and a column vector y, in single
    precision step for step as `noise.pnoise2(x, y)` (one octave, period 1024), so the values are
    the same to the bit (tests compare them), without a Python call per point."""
    x, y = x.astype(np.float32), y.astype(np.float32)
    i = np.floor(np.fmod(x, NOISE_REPEAT)).astype(np.intp)
    j = np.floor(np.fmod(y, NOISE_REPEAT)).astype(np.intp)
    ii = np.fmod((i + 1).astype(np.float32), NOISE_REPEAT).astype(np.intp) & 255
    jj = np.fmod((j + 1).astype(np.float32), NOISE_REPEAT).astype(np.intp) & 255
    i, j = i & 255, j & 255
    x, y = x - np.floor(x), y - np.floor(y)
    fx = x * x * x * (x * (x * 6 - 15) + 10)
    fy = y * y * y * (y * (y * 6 - 15) + 10)
    a, b = PERMUTATION[i], PERMUTATION[ii]

    def gradient(corner: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        h = PERMUTATION[corner] & 15
        return dx * GRADIENT_X[h] + dy * GRADIENT_Y[h]

    one = np.float32(1)
    low = gradient(PERMUTATION[a + j], x, y)
    low += fx * (gradient(PERMUTATION[b + j], x - one, y) - low)
    high = gradient(PERMUTATION[a + jj], x, y - one)
    high += fx * (gradient(PERMUTATION[b + jj], x - one, y - one) - high)
    return low + fy * (high - low)


def perlin(x_mm: np.ndarray, y_mm: np.ndarray, frequency: float, offset: tuple[float, float]) -> np.ndarray:
    """Perlin(p·f) on a regular grid (row vector x, column vector y), via a coarse lattice.

    The lattice spacing is 1/(10f) mm (never finer than the grid itself), evaluated with
    `improved_perlin` and interpolated bilinearly.
    """
    xs, ys = x_mm.ravel(), y_mm.ravel()
    if frequency <= 0:
        return np.zeros((ys.size, xs.size), np.float32)
    grid_step = float(xs[1] - xs[0]) if xs.size > 1 else 1.0
    step = max(1.0 / (NOISE_SAMPLES_PER_PERIOD * frequency), grid_step)
    # The lattice is anchored at multiples of `step`, so a point gets the same value whatever
    # window it is evaluated in.
    lx = np.arange(math.floor(xs[0] / step), math.floor(xs[-1] / step) + 2) * step
    ly = np.arange(math.floor(ys[0] / step), math.floor(ys[-1] / step) + 2) * step
    coarse = improved_perlin((lx * frequency + offset[0])[None, :], (ly * frequency + offset[1])[:, None])
    # Bilinear interpolation at the grid points (cv2.remap works in lattice-index units).
    map_x = np.broadcast_to(((xs - lx[0]) / step).astype(np.float32)[None, :], (ys.size, xs.size))
    map_y = np.broadcast_to(((ys - ly[0]) / step).astype(np.float32)[:, None], (ys.size, xs.size))
    return cv2.remap(coarse, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y), cv2.INTER_LINEAR)


def stain_fields(stain: StainSpec, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """Distance d = |p − c| and perturbed radius r' = r + Perlin(p·f)·A on a window."""
    cx, cy = stain.center_mm
    d = np.sqrt((win.x_mm - cx) ** 2 + (win.y_mm - cy) ** 2).astype(np.float32)
    r = (
        stain.radius_mm
        + perlin(win.x_mm, win.y_mm, stain.noise_frequency, stain.noise_offset) * stain.amplitude_mm
    )
    return d, np.maximum(r, 1e-6)


def stain_reflectance(stain: StainSpec, d_hat: np.ndarray, win: Window) -> np.ndarray:
    """R_out − R_in = d̂^γ·α, plus optional inner heterogeneity and rim darkening (off by default)."""
    change = np.power(d_hat, stain.gamma) * stain.alpha
    if stain.heterogeneity:
        inner_offset = (stain.noise_offset[1] + 17.0, stain.noise_offset[0] + 31.0)
        inner = perlin(win.x_mm, win.y_mm, stain.noise_frequency * 4, inner_offset)
        change = change + stain.heterogeneity * abs(stain.alpha) * inner
    if stain.rim_darkening:
        rim = np.clip((d_hat - 0.85) / 0.15, 0.0, 1.0)
        change = change - stain.rim_darkening * abs(stain.alpha) * rim * rim
    return change.astype(np.float32)


def paint_stains(maps: SurfaceMaps, stains: tuple[StainSpec, ...]) -> None:
    """Water stains change reflectance only. Where two overlap, the one whose own d̂ is
    smallest (the point lies deepest inside it) owns the pixel."""
    best = np.full(maps.shape, np.inf, np.float32)
    for stain in stains:
        reach = stain.radius_mm + stain.amplitude_mm
        cx, cy = stain.center_mm
        win = window(maps.shape, maps.texel_mm, (cx - reach, cy - reach, cx + reach, cy + reach))
        if win is None:
            continue
        d, r = stain_fields(stain, win)
        d_hat = d / r
        inside = d_hat <= 1.0
        owner = inside & (d_hat < best[win.rows, win.cols])
        if not owner.any():
            continue
        best[win.rows, win.cols][owner] = d_hat[owner]
        maps.reflectance[win.rows, win.cols][owner] = stain_reflectance(stain, d_hat, win)[owner]
        maps.instance_ids[win.rows, win.cols][owner] = stain.instance_id
        maps.class_ids[win.rows, win.cols][owner] = stain.class_id


def _polyline_distance(points_mm: object, win: Window) -> np.ndarray:
    """Distance (mm) from each texel centre to a polyline, exact per segment."""
    pts = np.asarray(points_mm, np.float64)
    best = np.full((win.y_mm.size, win.x_mm.size), np.inf)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy or 1e-12
        t = np.clip(((win.x_mm - ax) * dx + (win.y_mm - ay) * dy) / length2, 0.0, 1.0)
        dist = np.hypot(win.x_mm - (ax + t * dx), win.y_mm - (ay + t * dy))
        np.minimum(best, dist, out=best)
    return best.astype(np.float32)


def _mark_profile(mark: MarkSpec, win: Window, texel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(inside mask, profile in [0, 1] peaking at the mark's core) for one mark."""
    kind = mark.kind
    half_width = max(mark.width_mm / 2, 0.5 * texel_mm)
    offset = (mark.seed % 997 * 0.37, mark.seed % 991 * 0.53)
    if kind in STROKE_KINDS:
        dist = _polyline_distance(mark.points_mm, win)
        ragged = {"fray": 0.8, "uneven": 0.15}.get(kind, 0.0)  # width varying along the line
        if ragged:
            half_width = half_width * (
                1 + ragged * perlin(win.x_mm, win.y_mm, 2.0 / max(mark.width_mm, 0.05), offset)
            )
        inside = dist <= half_width
        return inside, np.clip(1 - (dist / half_width) ** 2, 0, 1)
    cx, cy = mark.points_mm[0]
    dx, dy = win.x_mm - cx, win.y_mm - cy
    radius = mark.size_mm / 2
    if kind == "fuzz":  # a tuft of 3-6 curly fibres around the centre
        rng = np.random.default_rng(mark.seed)
        dist = np.full(np.broadcast(dx, dy).shape, np.inf)
        for _ in range(int(rng.integers(3, 7))):
            start = np.array([cx, cy]) + rng.uniform(-0.3, 0.3, 2) * radius
            heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.5, 10))
            step = rng.uniform(0.6, 1.2) * radius / 10
            path = start + np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * step, axis=0)
            np.minimum(dist, _polyline_distance(np.vstack([start, path]), win), out=dist)
        inside = dist <= half_width
        return inside, np.clip(1 - (dist / half_width) ** 2, 0, 1)
    if kind == "fingerprint":  # an oval of ridges that only changes gloss
        a = math.radians(mark.angle_deg)
        u = (dx * math.cos(a) + dy * math.sin(a)) / radius
        v = (-dx * math.sin(a) + dy * math.cos(a)) / (radius * 0.7)
        rho = np.sqrt(u * u + v * v)
        inside = rho <= 1.0
        ridges = 0.5 + 0.5 * np.cos(2 * math.pi * rho * radius / 0.45 + 3 * u)
        return inside, np.where(inside, ridges * (1 - rho**4), 0.0)
    dist = np.sqrt(dx * dx + dy * dy)
    if kind in ("hole", "pit", "discoloration", "break", "edge_wear"):
        # Noise-perturbed blobs; holes are round-ish, the others irregular.
        wobble = {"hole": 0.08, "pit": 0.15}.get(kind, 0.3)
        frequency = 1.5 / max(radius, 0.05)
        radius_field = radius * (1 + wobble * 2 * perlin(win.x_mm, win.y_mm, frequency, offset))
        inside = dist <= radius_field
        return inside, np.clip(1 - dist / np.maximum(radius_field, 1e-6), 0, 1)
    if kind == "pilling":  # a cluster of small fibre balls
        rng = np.random.default_rng(mark.seed)
        inside = np.zeros(dist.shape, bool)
        profile = np.zeros(dist.shape)
        for _ in range(8):
            px, py = rng.uniform(-radius, radius, 2)
            r = rng.uniform(0.15, 0.35) * radius
            d = np.hypot(win.x_mm - cx - px, win.y_mm - cy - py)
            inside |= d <= r
            profile = np.maximum(profile, np.clip(1 - (d / r) ** 2, 0, 1))
        return inside, profile
    # dent, bump: a smooth cos² dome over the radius
    inside = dist <= radius
    return inside, np.where(inside, np.cos(np.clip(dist / radius, 0, 1) * math.pi / 2) ** 2, 0.0)


# Cavities have sharp walls and a uniformly dark floor: no fade towards their rim.
CAVITY_KINDS = {"hole", "pit"}

# Sign of the height change per kind: grooves, pits and chips go down; bumps, snags, pills up.
HEIGHT_SIGN = {
    "bump": 1.0,
    "snag": 1.0,
    "pilling": 1.0,
    "crease": -0.5,
    "discoloration": 0.0,
    "fingerprint": 0.0,
    "fuzz": 1.0,
}


def paint_mark(maps: SurfaceMaps, mark: MarkSpec) -> None:
    """Rasterise one defect (or fingerprint); it owns every texel inside it."""
    pts = np.asarray(mark.points_mm)
    reach = mark.size_mm / 2 * 1.6 + mark.width_mm
    if mark.kind in STROKE_KINDS:
        reach = mark.width_mm * 2 + maps.texel_mm
    box = (
        pts[:, 0].min() - reach,
        pts[:, 1].min() - reach,
        pts[:, 0].max() + reach,
        pts[:, 1].max() + reach,
    )
    win = window(maps.shape, maps.texel_mm, box)
    if win is None:
        return
    inside, profile = _mark_profile(mark, win, maps.texel_mm)
    if not inside.any():
        return
    region = (win.rows, win.cols)
    if mark.kind in CAVITY_KINDS:
        profile = inside.astype(np.float32)
    elif mark.kind == "break":  # a chipped edge: a step at the rim, then a rough fracture
        # facet sloping down towards the edge it broke off (not a black hole: real chips
        # differ from the ground surface by about one image std)
        offset = (mark.seed % 487 * 0.43, mark.seed % 479 * 0.31)
        grit = perlin(win.x_mm, win.y_mm, 4.0, offset)
        profile = np.where(inside, 0.3 + 0.7 * profile + 0.15 * grit, 0.0)
    elif mark.kind == "uneven":  # a band ground more coarsely: stronger marks along y
        offset = (mark.seed % 499 * 0.41, mark.seed % 491 * 0.29)
        marks = perlin(win.x_mm, win.y_mm * 0.05, 3.0, offset)
        profile = np.where(inside, 0.6 + 0.4 * marks, 0.0)
    profile = profile.astype(np.float32)
    sign = HEIGHT_SIGN.get(mark.kind, -1.0)
    maps.height_mm[region] += sign * abs(mark.depth_mm) * profile
    maps.reflectance[region] = np.where(
        inside, mark.reflectance * np.maximum(profile, 0.35), maps.reflectance[region]
    )
    maps.roughness[region] += np.where(inside, mark.roughness * profile, 0).astype(np.float32)
    maps.instance_ids[region][inside] = mark.instance_id
    maps.class_ids[region][inside] = mark.class_id


def build_maps(spec: SceneSpec) -> SurfaceMaps:
    """All texture-space maps of one scene: stains first, then defects drawn over them."""
    texel_mm = texel_size(spec)
    maps = SurfaceMaps.empty(map_shape(spec, texel_mm), texel_mm)
    paint_stains(maps, spec.stains)
    for mark in spec.marks:
        paint_mark(maps, mark)
    return maps
