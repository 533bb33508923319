"""A tiny dataset in the canonical layout (drawn shapes with exact polygon labels).

Tests, benchmarks and smoke runs of the YOLO code use it so that they need neither the renderer
nor real data.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

TOY_NAMES = {0: "scratch", 1: "stain"}


def _shape_mask(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """A thin line for a scratch, a filled ellipse for a stain."""
    mask = np.zeros((size, size), np.uint8)
    if cls == 0:
        p0, p1 = rng.integers(size // 8, size - size // 8, (2, 2))
        cv2.line(mask, tuple(map(int, p0)), tuple(map(int, p1)), 1, max(2, size // 24))
    else:
        centre = tuple(int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        axes = tuple(int(v) for v in rng.integers(size // 12, size // 5, 2))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask


def _polygon_label(cls: int, mask: np.ndarray) -> str:
    """One YOLO segment line: class and the normalised outline of the largest contour."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max(contours, key=cv2.contourArea).reshape(-1, 2) / np.array(mask.shape[::-1])
    return " ".join([str(cls), *(f"{v:.6f}" for v in outline.ravel())])


def make_toy_dataset(root: Path, splits: dict[str, int] | None = None, size: int = 64, seed: int = 0) -> Path:
    """Write `splits` ({split: image count}) of `size`² images and dataset.yaml under `root`."""
    splits = splits or {"train": 8, "val": 4}
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            noise = rng.normal(0, 6, (size, size, 1))
            image = np.clip(120 + noise, 0, 255).repeat(3, axis=2).astype(np.uint8)
            lines = []
            for _ in range(int(rng.integers(1, 3))):
                cls = int(rng.integers(0, len(TOY_NAMES)))
                mask = _shape_mask(rng, cls, size)
                image[mask > 0] = 40 if cls == 0 else 200
                lines.append(_polygon_label(cls, mask))
            stem = f"{split}_{index:04d}"
            cv2.imwrite(str(root / "images" / split / f"{stem}.png"), image)
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    data = {"path": str(root.resolve()), **{s: f"images/{s}" for s in splits}, "names": TOY_NAMES}
    (root / "dataset.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root
