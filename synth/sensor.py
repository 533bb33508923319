"""The sensor and optics model: what a real camera does to the light a view renders.

A render is clean: no noise, no blur, no JPEG. The real photographs this project is judged on
are not (the magnetic tiles are JPEG from a grey camera). `apply_sensor` turns a view's sRGB
render into what such a camera would record, identically for Cycles and the raster view, with
per-image parameters sampled into the spec (`SensorSpec`) and a noise seed of their own, so a
spec re-renders to the same bytes. Labels are untouched: the sensor moves no surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from synth.config import SensorConfig, own_stream, sample_range

# A stream of its own, so that turning the sensor on changes none of the scene's other draws.
SENSOR_STREAM = 0x5E2503


@dataclass(frozen=True)
class SensorSpec:
    exposure_ev: float
    vignetting: float
    blur_px: float
    grey: bool
    shot_noise: float
    read_noise: float
    gamma: float
    jpeg_quality: int | None
    noise_seed: int


def sample_sensor(config: SensorConfig, seed: int, index: int) -> SensorSpec:
    """The sensor of image `index`; depends only on (config, seed, index)."""
    rng = own_stream(seed, index, SENSOR_STREAM)
    quality = None
    if config.jpeg_quality is not None:
        quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    return SensorSpec(
        exposure_ev=sample_range(rng, config.exposure_ev),
        vignetting=sample_range(rng, config.vignetting),
        blur_px=sample_range(rng, config.blur_px),
        grey=config.grey,
        shot_noise=sample_range(rng, config.shot_noise),
        read_noise=sample_range(rng, config.read_noise),
        gamma=sample_range(rng, config.gamma),
        jpeg_quality=quality,
        noise_seed=int(rng.integers(0, 2**32 - 1)),
    )


def apply_sensor(rgb: np.ndarray, sensor: SensorSpec | None) -> np.ndarray:
    """A view's render (sRGB uint8, H x W x 3) as the camera records it, in the same form."""
    if sensor is None:
        return rgb
    x = rgb.astype(np.float32) / 255.0
    x *= np.float32(2.0**sensor.exposure_ev)
    if sensor.vignetting > 0:
        h, w = x.shape[:2]
        yy, xx = np.mgrid[:h, :w].astype(np.float32)
        r2 = ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2
        x *= (1.0 - sensor.vignetting * r2 / 2.0)[..., None]  # r2 = 2 at the corners
    if sensor.blur_px > 0:
        x = cv2.GaussianBlur(x, (0, 0), sensor.blur_px, borderType=cv2.BORDER_REFLECT)
    if sensor.grey:
        luminance = x @ np.array([0.299, 0.587, 0.114], np.float32)  # as a grey camera's ITU-R 601
        x = np.repeat(luminance[..., None], 3, axis=2)
    if sensor.shot_noise > 0 or sensor.read_noise > 0:
        rng = np.random.default_rng(sensor.noise_seed)
        std = np.sqrt(sensor.shot_noise**2 * np.clip(x, 0, None) + sensor.read_noise**2)
        noise = rng.standard_normal(x.shape[:2] if sensor.grey else x.shape).astype(np.float32)
        x = x + std * (noise[..., None] if sensor.grey else noise)
    x = np.clip(x, 0.0, 1.0) ** np.float32(1.0 / sensor.gamma)
    rgb = np.rint(x * 255.0).astype(np.uint8)
    if sensor.jpeg_quality is not None:
        quality = [cv2.IMWRITE_JPEG_QUALITY, sensor.jpeg_quality]
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), quality)
        assert ok, "OpenCV could not encode a JPEG"
        rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return rgb
