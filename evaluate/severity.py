"""Physical size, contrast and a severity score per detection.

An inspector judges a defect by its size in millimetres, how visible it is and where it is, and
each class by a different measure (a scratch by its length, a stain by its area), so the score is
a per-class linear combination of those measurements with coefficients from a YAML file:

    S = length·length_mm + width·width_mm + area·area_mm2 + contrast·contrast + location·weight
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from synth.annotations import rasterize_rings
from synth.writers import oriented_box

COEFFICIENTS = ("length", "width", "area", "contrast", "location")
DEFAULT_SEVERITY = Path(__file__).with_name("severity.yaml")


@dataclass(frozen=True)
class Measurement:
    """Length and width of the oriented extent, area from the mask (the box when there is none).

    `angle_deg` is the direction of the length in image axes (x right, y down), in [0, 180).
    `contrast` is |mean inside − mean in a ring around| / 255; `location_weight` the largest
    weight-map value under the defect (1 without a map).
    """

    length_mm: float
    width_mm: float
    angle_deg: float
    area_mm2: float
    contrast: float
    location_weight: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def oriented_extent(mask: np.ndarray) -> tuple[float, float, float]:
    """Length, width (pixels) and angle of the mask's oriented box (`synth.writers.oriented_box`,
    the rectangle the OBB labels hold), so an axis-aligned block of w x h pixels measures w x h."""
    _, (length, width), angle = oriented_box(mask)
    return length, width, angle


def local_contrast(gray: np.ndarray, mask: np.ndarray, ring_px: int = 5) -> float:
    """|mean inside − mean of a ring ring_px wide around| / 255 (0 when there is no ring)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    ring = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask
    if not ring.any() or not mask.any():
        return 0.0
    return float(abs(gray[mask].mean() - gray[ring].mean()) / 255.0)


def measure(
    gray: np.ndarray,
    box: tuple[float, float, float, float],
    mm_per_pixel: float,
    mask: np.ndarray | None = None,
    mask_origin: tuple[int, int] = (0, 0),
    weight_map: np.ndarray | None = None,
    ring_px: int = 5,
    oriented: tuple[tuple[float, float], tuple[float, float], float] | None = None,
) -> Measurement:
    """Measure one detection in an image (`gray`: uint8 H x W; box and mask in its pixels).

    A mask gives the oriented extent (`oriented_extent`). Without one, an `oriented` box (an OBB
    model's ((cx, cy), (w, h), angle in degrees), as `cv2.minAreaRect` writes it) gives length,
    width, angle and area; without either, the box does, axis-aligned (a detect model).
    """
    height, width = gray.shape
    if mask is None and oriented is not None:
        (length, breadth), angle = oriented[1], oriented[2]
        if length < breadth:
            length, breadth, angle = breadth, length, angle + 90.0
        angle, area_px = angle % 180.0, length * breadth
        corners = cv2.boxPoints(oriented)
        ox, oy = (max(int(np.floor(v)), 0) for v in corners.min(axis=0))
        x1, y1 = (int(np.ceil(v)) for v in corners.max(axis=0))
        window = (max(min(y1, height) - oy, 1), max(min(x1, width) - ox, 1))
        mask = rasterize_rings([corners - (ox, oy)], window)
    elif mask is None:
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        length, breadth, angle = (w, h, 0.0) if w >= h else (h, w, 90.0)
        area_px = w * h
        ox, oy = int(np.floor(x0)), int(np.floor(y0))
        mask = np.ones((int(np.ceil(y1)) - oy, int(np.ceil(x1)) - ox), bool)
    else:
        length, breadth, angle = oriented_extent(mask)
        area_px = float(mask.sum())
        ox, oy = mask_origin
    if ox < 0 or oy < 0 or ox + mask.shape[1] > width or oy + mask.shape[0] > height:
        raise ValueError(f"mask at {(ox, oy)} of shape {mask.shape} leaves the {width}x{height} image")
    # a window holding the mask and its ring, clipped to the image
    wx0, wy0 = max(ox - ring_px, 0), max(oy - ring_px, 0)
    wx1 = min(ox + mask.shape[1] + ring_px, width)
    wy1 = min(oy + mask.shape[0] + ring_px, height)
    placed = np.zeros((wy1 - wy0, wx1 - wx0), bool)
    placed[oy - wy0 : oy - wy0 + mask.shape[0], ox - wx0 : ox - wx0 + mask.shape[1]] = mask
    weight = 1.0
    if weight_map is not None:
        under = weight_map[wy0:wy1, wx0:wx1][placed]
        weight = float(under.max()) if under.size else 0.0
    return Measurement(
        length_mm=length * mm_per_pixel,
        width_mm=breadth * mm_per_pixel,
        angle_deg=angle,
        area_mm2=area_px * mm_per_pixel**2,
        contrast=local_contrast(gray[wy0:wy1, wx0:wx1], placed, ring_px),
        location_weight=weight,
    )


@dataclass(frozen=True)
class SeverityModel:
    """Per-class severity coefficients; classes not listed use `default`."""

    default: dict[str, float]
    classes: dict[str, dict[str, float]]

    def coefficients(self, name: str) -> dict[str, float]:
        return self.default | self.classes.get(name, {})

    def score(self, name: str, m: Measurement) -> float:
        c = self.coefficients(name)
        values = (m.length_mm, m.width_mm, m.area_mm2, m.contrast, m.location_weight)
        return float(sum(c[k] * v for k, v in zip(COEFFICIENTS, values, strict=True)))


def _coefficients(entry: Any, where: str, complete: bool) -> dict[str, float]:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping of {', '.join(COEFFICIENTS)}")
    for key, value in entry.items():
        if key not in COEFFICIENTS:
            raise ValueError(f"{where}.{key}: unknown coefficient, expected {', '.join(COEFFICIENTS)}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
    missing = [k for k in COEFFICIENTS if k not in entry]
    if complete and missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    return {k: float(v) for k, v in entry.items()}


def load_severity(path: Path | None = None) -> SeverityModel:
    """Read severity coefficients (evaluate/severity.yaml when no path is given)."""
    path = Path(path or DEFAULT_SEVERITY)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or set(data) - {"default", "classes"} or "default" not in data:
        raise ValueError(f"{path}: expected a mapping with 'default' and optional 'classes'")
    classes = data.get("classes") or {}
    if not isinstance(classes, dict):
        raise ValueError(f"{path}: classes: expected a mapping of class name to coefficients")
    return SeverityModel(
        _coefficients(data["default"], f"{path}: default", complete=True),
        {
            str(name): _coefficients(entry, f"{path}: classes.{name}", complete=False)
            for name, entry in classes.items()
        },
    )
