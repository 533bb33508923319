"""The one image reader and the one list of image file suffixes of defectsynth.

Every command reads photographs and renders through `read_image`, so a grey, grey + alpha,
RGBA or 16-bit file means the same pixels to the importer, PatchCore, the detectors and the
evaluation.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from synth.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class UnreadableImage(DataError):
    """A file that is not a readable image (an importer lists it as a skip)."""


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> np.ndarray:
    """Any grey / grey+alpha / RGB(A), 8 or 16 bit image file as 8-bit RGB (H, W, 3)."""
    image = decode_file(Path(path))
    if image is None:
        raise UnreadableImage(f"{path}: not a readable image")
    return to_rgb8(image, path)


def decode_file(path: Path) -> np.ndarray | None:
    """The file's pixels as stored (any depth and channels, OpenCV order); None if the file is
    empty or not an image. Masks are read with this too, so nothing rescales them."""
    try:
        data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.empty(0, np.uint8)
    except OSError as e:
        raise UnreadableImage(f"{path}: cannot be read ({e.strerror or e})") from None
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None


def to_rgb8(image: np.ndarray, path: Path) -> np.ndarray:
    """A decoded image (OpenCV channel order, any channel count, 8 or 16 bit) as 8-bit RGB;
    alpha is dropped, 16-bit values are scaled to 0..255."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) * (255.0 / 65535.0)).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise UnreadableImage(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 2:  # grey + alpha
        return cv2.cvtColor(np.ascontiguousarray(image[..., 0]), cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(image, code)
