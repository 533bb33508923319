"""Where the Blender scene's plate, camera and lights go: plain numpy outside the bpy package,
so the geometry is testable without Blender.

World frame (metres): the plate centre is the origin, +x is the image's right, +y the image's
top, +z points up to the camera. A plate point (x_mm, y_mm) (origin top-left, y down) of a flat
plate sits at ((x − W/2)·1e-3, (H/2 − y)·1e-3, 0). A curved tile bends about the plate's
vertical axis: its cross-section along x is an arc of `bend_deg` whose crest is the origin.
Light azimuth 0° lies towards the image's right, 90° towards its top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synth.scene import CameraSpec, GeometrySpec, LightSpec, SceneSpec

M_PER_MM = 1e-3
RING_LEDS = 12  # a ring light is this many small disc emitters on a circle


def plate_grid(geometry: GeometrySpec, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (2·(columns+1), 3) of a strip of quads spanning the plate, and their plate
    coordinates (mm). Row 0 holds the top edge (y = 0), row 1 the bottom edge (y = H)."""
    w, h = geometry.width_mm, geometry.height_mm
    x_mm = np.linspace(0.0, w, columns + 1)
    plate = np.array([(x, y) for y in (0.0, h) for x in x_mm])
    s = plate[:, 0] - w / 2
    bend = math.radians(geometry.bend_deg) if geometry.shape == "curved_tile" else 0.0
    if bend > 1e-6:
        radius = w / bend  # the arc keeps the plate's width as its length
        phi = s / radius
        x, z = radius * np.sin(phi), radius * (np.cos(phi) - 1.0)
    else:
        x, z = s, np.zeros_like(s)
    vertices = np.stack([x, h / 2 - plate[:, 1], z], axis=1) * M_PER_MM
    return vertices, plate


def rotation_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def pose(rotation: np.ndarray, location: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = location
    return matrix


def camera_matrix(camera: CameraSpec) -> np.ndarray:
    """Straight down from camera.height_mm over the plate centre, then tilted about the
    image's horizontal axis (orbiting the plate centre) and rolled about the optical axis."""
    tilt = rotation_x(camera.tilt_deg)
    location = tilt @ np.array([0.0, 0.0, camera.height_mm * M_PER_MM])
    return pose(tilt @ rotation_z(camera.roll_deg), location)


def look_at(position: np.ndarray, target: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Rotation whose −z axis points from `position` to `target` and whose x axis is
    `across` made perpendicular to it (Blender lights and cameras face −z)."""
    z = position - target
    z = z / np.linalg.norm(z)
    x = across - z * float(across @ z)
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


@dataclass(frozen=True)
class Emitter:
    """One Blender area light."""

    matrix: np.ndarray
    shape: str  # SQUARE, RECTANGLE or DISK
    size_m: float
    size_y_m: float
    power_w: float
    temperature_k: float


def emitters(light: LightSpec) -> list[Emitter]:
    """The area lights that realise one LightSpec.

    area: a square of side size_mm facing the plate centre; bar: a size_mm × size_mm/12 strip
    whose long side is horizontal and across the light direction (raking bar light); ring:
    RING_LEDS small discs on a circle of diameter size_mm centred on the pose, each aimed at
    the plate centre, sharing the power.
    """
    az, el = math.radians(light.azimuth_deg), math.radians(light.elevation_deg)
    direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    centre = direction * light.distance_mm * M_PER_MM
    across = np.array([-math.sin(az), math.cos(az), 0.0])  # horizontal, ⊥ to the azimuth
    origin = np.zeros(3)
    size = light.size_mm * M_PER_MM
    common = {"temperature_k": light.temperature_k}
    if light.type == "area":
        return [Emitter(pose(look_at(centre, origin, across), centre), "SQUARE", size, size,
                        light.power_w, **common)]  # fmt: skip
    if light.type == "bar":
        return [Emitter(pose(look_at(centre, origin, across), centre), "RECTANGLE", size,
                        size / 12, light.power_w, **common)]  # fmt: skip
    frame = look_at(centre, origin, across)
    led = max(size * math.pi / RING_LEDS * 0.5, 1e-3)
    out = []
    for k in range(RING_LEDS):
        angle = 2 * math.pi * k / RING_LEDS
        position = centre + size / 2 * (math.cos(angle) * frame[:, 0] + math.sin(angle) * frame[:, 1])
        rotation = look_at(position, origin, frame[:, 0])
        out.append(Emitter(pose(rotation, position), "DISK", led, led,
                           light.power_w / RING_LEDS, **common))  # fmt: skip
    return out


def irradiance_at_centre(lights: tuple[LightSpec, ...]) -> float:
    """W/m² on the plate centre (flat, facing up) from Lambertian emitters aimed at it:
    E = Σ P/(π d²)·cos θ. Blender's area lights follow exactly this (checked by rendering)."""
    total = 0.0
    for light in lights:
        for e in emitters(light):
            position = e.matrix[:3, 3]
            d = float(np.linalg.norm(position))
            total += e.power_w / (math.pi * d * d) * max(float(position[2]) / d, 0.0)
    return total


def texels_under_pixels(spec: SceneSpec, texel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the texel under each pixel centre for a flat plate seen straight down.

    A perspective camera looking straight down at a flat plate maps it affinely, exactly as an
    orthographic one does: pixel (i, j) centre ↔ plate point
    (W/2 + (j + ½ − w/2)·mm_per_px, H/2 + (i + ½ − h/2)·mm_per_px). Indices may fall outside
    the texel grid where the view overhangs the plate.
    """
    cam = spec.camera
    j = np.arange(cam.width_px) + 0.5 - cam.width_px / 2
    i = np.arange(cam.height_px) + 0.5 - cam.height_px / 2
    x = spec.geometry.width_mm / 2 + j * cam.mm_per_px
    y = spec.geometry.height_mm / 2 + i * cam.mm_per_px
    rows = np.floor(y / texel_mm).astype(np.int64)[:, None]
    cols = np.floor(x / texel_mm).astype(np.int64)[None, :]
    return np.broadcast_to(rows, (i.size, j.size)), np.broadcast_to(cols, (i.size, j.size))
