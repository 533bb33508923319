"""Appearance transfer to the target domain: renders matched to random real good images.

The style-transfer idea of cross-domain inspection work, in its two cheapest forms, applied
after the sensor and before writing, with labels untouched:

- Fourier domain adaptation (FDA, Yang & Soatto 2020): the low-frequency amplitude spectrum
  (global brightness, shading, large-scale texture energy) comes from a real image, the phase
  (where the edges, marks and defects are) stays the render's.
- Histogram matching: each channel's grey-level distribution becomes the real image's.

Both are a few lines of numpy; histogram matching is written here rather than taken from
scikit-image so that rendering needs no image-processing library beyond OpenCV.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from synth.config import AppearanceConfig, own_stream, sample_range
from synth.errors import DataError
from synth.images import is_image, read_image

APPEARANCE_STREAM = 0xA99EA2


@dataclass(frozen=True)
class AppearanceSpec:
    reference: str  # a canonical dataset or a folder of good images
    method: str
    beta: float
    reference_draw: float  # which reference image: index = floor(draw x count) of the sorted list
    applied: bool


def sample_appearance(config: AppearanceConfig, seed: int, index: int) -> AppearanceSpec:
    """The transfer of image `index`; depends only on (config, seed, index)."""
    rng = own_stream(seed, index, APPEARANCE_STREAM)
    return AppearanceSpec(
        reference=config.reference,
        method=config.method,
        beta=sample_range(rng, config.beta),
        reference_draw=float(rng.random()),
        applied=bool(rng.random() < config.probability),
    )


def check_reference(config: AppearanceConfig | None) -> None:
    """Refuse, before anything is written, a reference that holds no good images."""
    if config is not None:
        reference_images(config.reference)


@functools.cache
def reference_images(reference: str) -> tuple[Path, ...]:
    """The good images a transfer draws from: a canonical dataset's good train images (never
    another split), or every image of a folder, sorted."""
    from synth.dataset import Dataset

    root = Path(reference)
    if (root / "dataset.json").is_file():
        paths = sorted(s.image_path for s in Dataset(root).samples("train") if s.good)
    elif root.is_dir():
        paths = sorted(p for p in root.rglob("*") if is_image(p))
    else:
        raise DataError(f"appearance.reference: {root} is neither a dataset nor a folder of images")
    if not paths:
        raise DataError(f"appearance.reference: {root} holds no good images to match renders to")
    return tuple(paths)


def apply_appearance(rgb: np.ndarray, spec: AppearanceSpec | None) -> np.ndarray:
    """The render (sRGB uint8) matched to its drawn reference image, in the same form."""
    if spec is None or not spec.applied:
        return rgb
    paths = reference_images(spec.reference)
    target = read_image(paths[min(int(spec.reference_draw * len(paths)), len(paths) - 1)])
    target = cv2.resize(target, rgb.shape[1::-1], interpolation=cv2.INTER_AREA)
    if spec.method == "histogram":
        return match_histograms(rgb, target)
    return fourier_transfer(rgb, target, spec.beta)


def fourier_transfer(source: np.ndarray, target: np.ndarray, beta: float) -> np.ndarray:
    """`source` with the low-frequency amplitude of `target` (same shape, uint8), per channel."""
    h, w = source.shape[:2]
    b = int(np.floor(beta * min(h, w)))
    if b == 0:
        return source
    fs = np.fft.fftshift(np.fft.fft2(source.astype(np.float64), axes=(0, 1)), axes=(0, 1))
    ft = np.fft.fftshift(np.fft.fft2(target.astype(np.float64), axes=(0, 1)), axes=(0, 1))
    amplitude, phase = np.abs(fs), np.angle(fs)
    cy, cx = h // 2, w // 2
    window = (slice(cy - b, cy + b + 1), slice(cx - b, cx + b + 1))
    amplitude[window] = np.abs(ft)[window]
    mixed = np.fft.ifft2(np.fft.ifftshift(amplitude * np.exp(1j * phase), axes=(0, 1)), axes=(0, 1))
    return np.clip(np.rint(mixed.real), 0, 255).astype(np.uint8)


def match_histograms(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each channel of `source` mapped so that its grey-level CDF is `target`'s."""
    out = np.empty_like(source)
    levels = np.arange(256)
    for c in range(source.shape[2]):
        src_cdf = np.cumsum(np.bincount(source[..., c].ravel(), minlength=256)) / source[..., c].size
        tgt_cdf = np.cumsum(np.bincount(target[..., c].ravel(), minlength=256)) / target[..., c].size
        lut = np.interp(src_cdf, tgt_cdf, levels)
        out[..., c] = np.rint(lut).astype(np.uint8)[source[..., c]]
    return out
