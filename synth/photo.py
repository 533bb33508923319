"""Photo surfaces: a scene's defects and impurities rendered onto real good photographs.

With `surface.photo` (`synth.config.PhotoConfig`) every image takes its surface's base
appearance from a random crop of a random good photo instead of the procedural texture. The
crop is drawn on the image's own random stream and recorded in its spec (`PhotoSpec`), so the
stains, defects, labels and every other draw are those of the same scene without the photo.
The raster view replaces base colour x texture with the crop (`synth.raster.surface`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.config import PhotoConfig, SceneConfig, own_stream, sample_range
from synth.errors import ConfigError, DataError
from synth.images import is_image, read_image

PHOTO_STREAM = 0x9407


@dataclass(frozen=True)
class PhotoSpec:
    """The crop of one image: which photo, where, mirrored or turned, how bright."""

    source: str  # the dataset or folder the photo is from
    path: str  # the photo, relative to source
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the crop in the photo's pixels
    scale: float  # drawn photo pixels per render pixel (the box is the view at this scale)
    flip: bool  # mirrored left-right, after cropping
    turns: int  # quarter turns counter-clockwise (numpy.rot90), after the mirroring
    gain: float  # multiplies the photo's linear RGB


@dataclass(frozen=True)
class Photo:
    path: Path
    width: int
    height: int
    grey: bool  # every pixel has R = G = B


@functools.cache
def photo_library(source: str) -> tuple[Photo, ...]:
    """The photos of a source with their sizes: a canonical dataset's good train images (never
    another split), or every image of a folder, sorted. Each is read once per process."""
    from synth.dataset import Dataset

    root = Path(source)
    if (root / "dataset.json").is_file():
        train = Dataset(root).samples("train")
        paths = sorted(s.image_path for s in train if s.good)
        if not paths:
            raise DataError(
                f"surface.photo.source: {root} has no good train image to take photos from "
                f"(its {len(train)} train images are all defective)"
            )
    elif root.is_dir():
        paths = sorted(p for p in root.rglob("*") if is_image(p))
        if not paths:
            raise DataError(f"surface.photo.source: {root} holds no images to take photos from")
    else:
        raise DataError(f"surface.photo.source: {root} is neither a dataset nor a folder of images")
    photos = []
    for path in paths:
        image = read_image(path)
        grey = bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
        photos.append(Photo(path, image.shape[1], image.shape[0], grey))
    return tuple(photos)


def photo_configs(config: SceneConfig) -> list[PhotoConfig]:
    """The photo settings of the surface and of each of its looks."""
    surfaces = [config.surface, *(config.surface.looks or [])]
    return [s.photo for s in surfaces if s.photo is not None]


def colour_scene(config: SceneConfig) -> bool:
    """Whether the scene renders colour: no grey sensor, and a coloured surface or hue jitter."""
    if config.sensor is not None and config.sensor.grey:
        return False
    surfaces = [config.surface, *(config.surface.looks or [])]
    coloured = any(len(set(s.color_low)) > 1 or len(set(s.color_high)) > 1 for s in surfaces)
    return coloured or config.randomization.hue_jitter[1] > 0


def crop_size(config: SceneConfig, scale: float) -> tuple[int, int]:
    """(width, height) in photo pixels of the crop that shows the view at `scale`."""
    width, height = config.camera.resolution
    return math.ceil(width * scale - 1e-9), math.ceil(height * scale - 1e-9)


def usable_photos(config: SceneConfig, photo: PhotoConfig) -> tuple[Photo, ...]:
    """The photos of `photo.source`, each checked to hold the view at the minimum scale and to
    be in colour if the scene is."""
    photos = photo_library(photo.source)
    need_w, need_h = crop_size(config, photo.scale[0])
    colour = colour_scene(config)
    for p in photos:
        if p.width < need_w or p.height < need_h:
            raise DataError(
                f"surface.photo.source: {p.path} is {p.width} x {p.height} px, smaller than the "
                f"{need_w} x {need_h} px crop of camera.resolution at surface.photo.scale min "
                f"{photo.scale[0]:g}"
            )
        if colour and p.grey:
            raise DataError(
                f"surface.photo.source: {p.path} is grey but the scene renders colour "
                "(surface colours or hue jitter); give colour photos or set sensor.grey"
            )
    return photos


def check_photo(config: SceneConfig, renderer: str) -> None:
    """Refuse, before anything is written, a photo surface the renderer does not show or whose
    photos do not fit the scene."""
    photos = photo_configs(config)
    if photos and renderer != "raster":
        raise ConfigError(
            "surface.photo: the Cycles renderer does not render photo surfaces; --renderer raster does"
        )
    for photo in photos:
        usable_photos(config, photo)


def sample_photo(config: SceneConfig, photo: PhotoConfig, index: int) -> PhotoSpec:
    """The crop of image `index`, on its own stream: depends only on (config, seed, index) and
    the photos of the source."""
    rng = own_stream(config.seed, index, PHOTO_STREAM)
    photos = usable_photos(config, photo)
    chosen = photos[int(rng.integers(len(photos)))]
    width, height = config.camera.resolution
    fits = min(chosen.width / width, chosen.height / height)
    scale = sample_range(rng, (photo.scale[0], min(photo.scale[1], fits)))
    crop_w, crop_h = crop_size(config, scale)
    boxes = {k: (crop_h, crop_w) if k % 2 else (crop_w, crop_h) for k in range(4 if photo.turns else 1)}
    turns = [k for k, (w, h) in boxes.items() if w <= chosen.width and h <= chosen.height]
    turn = turns[int(rng.integers(len(turns)))]
    box_w, box_h = boxes[turn]
    x0 = int(rng.integers(chosen.width - box_w + 1))
    y0 = int(rng.integers(chosen.height - box_h + 1))
    return PhotoSpec(
        source=photo.source,
        path=chosen.path.relative_to(photo.source).as_posix(),
        box=(x0, y0, x0 + box_w, y0 + box_h),
        scale=scale,
        flip=bool(photo.flips and rng.random() < 0.5),
        turns=turn,
        gain=sample_range(rng, photo.gain),
    )


def photo_crop(spec: PhotoSpec) -> np.ndarray:
    """The spec's crop in linear RGB times its gain, (h, w, 3) float32, oriented as the view."""
    image = read_image(Path(spec.source) / spec.path)
    x0, y0, x1, y1 = spec.box
    crop = image[y0:y1, x0:x1]
    if spec.flip:
        crop = crop[:, ::-1]
    srgb = np.rot90(crop, spec.turns).astype(np.float32) / np.float32(255)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return np.ascontiguousarray(linear * np.float32(spec.gain), np.float32)
