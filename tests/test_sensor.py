"""The sensor model: off changes nothing, on is deterministic per image, labels stay exact."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from synth.config import ConfigError, SensorConfig, parse_config
from synth.dataset import Dataset
from synth.render import render_dataset
from synth.scene import sample_scene
from synth.sensor import apply_sensor, sample_sensor

GRADIENT = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], 48, axis=0).repeat(3, axis=2)
CAMERA = {
    "exposure_ev": [-0.3, 0.3],
    "vignetting": [0.1, 0.3],
    "blur_px": [0.5, 1.0],
    "grey": True,
    "shot_noise": [0.01, 0.03],
    "read_noise": [0.005, 0.01],
    "gamma": [0.9, 1.1],
    "jpeg_quality": [70, 90],
}


def test_a_sensor_with_every_parameter_off_changes_no_pixel():
    sensor = sample_sensor(SensorConfig(), seed=0, index=3)
    assert np.array_equal(apply_sensor(GRADIENT, sensor), GRADIENT)
    assert apply_sensor(GRADIENT, None) is GRADIENT


def test_no_sensor_section_keeps_the_config_hash_and_the_other_draws(tiny_scene):
    plain = parse_config(tiny_scene)
    assert "sensor" not in plain.dump()
    with_sensor = parse_config({**tiny_scene, "sensor": CAMERA})
    assert with_sensor.digest() != plain.digest()
    for index in range(4):
        a, b = sample_scene(plain, index), sample_scene(with_sensor, index)
        assert a.sensor is None and b.sensor is not None
        assert dataclasses.replace(b, sensor=None, config_hash=a.config_hash) == a  # own stream


def test_sensor_is_deterministic_per_image_and_varies_between_images():
    config = SensorConfig.model_validate(CAMERA)
    first, again, other = (sample_sensor(config, 7, i) for i in (0, 0, 1))
    assert first == again and first != other
    assert 70 <= first.jpeg_quality <= 90 and first.grey
    assert np.array_equal(apply_sensor(GRADIENT, first), apply_sensor(GRADIENT, again))
    assert not np.array_equal(apply_sensor(GRADIENT, first), apply_sensor(GRADIENT, other))


def test_noise_has_the_stated_strength_and_grey_means_equal_channels():
    flat = np.full((200, 200, 3), 128, np.uint8)
    config = SensorConfig(read_noise=(0.02, 0.02), grey=True)
    out = apply_sensor(flat, sample_sensor(config, 0, 0)).astype(np.float64)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert out[..., 0].std() == pytest.approx(0.02 * 255, rel=0.1)
    shot = SensorConfig(shot_noise=(0.04, 0.04))
    bright = apply_sensor(np.full((200, 200, 3), 230, np.uint8), sample_sensor(shot, 0, 0)).std()
    dark = apply_sensor(np.full((200, 200, 3), 30, np.uint8), sample_sensor(shot, 0, 0)).std()
    assert bright > 2 * dark  # signal-dependent: std grows with sqrt(value)


def test_blur_vignetting_and_jpeg_do_what_they_say():
    edge = np.zeros((32, 32, 3), np.uint8)
    edge[:, 16:] = 255
    blurred = apply_sensor(edge, sample_sensor(SensorConfig(blur_px=(2.0, 2.0)), 0, 0))
    assert 0 < blurred[16, 15, 0] < 255 and blurred[16, 0, 0] == 0
    white = np.full((33, 33, 3), 200, np.uint8)
    vignetted = apply_sensor(white, sample_sensor(SensorConfig(vignetting=(0.5, 0.5)), 0, 0))
    assert vignetted[16, 16, 0] == 200 and vignetted[0, 0, 0] < 120
    compressed = apply_sensor(GRADIENT, sample_sensor(SensorConfig(jpeg_quality=(10, 10)), 0, 0))
    assert compressed.shape == GRADIENT.shape and not np.array_equal(compressed, GRADIENT)


def test_labels_are_those_of_the_clean_render(tiny_scene, tmp_path: Path):
    clean, camera = tmp_path / "clean", tmp_path / "camera"
    render_dataset(parse_config(tiny_scene), clean, renderer="raster", progress=False)
    render_dataset(parse_config({**tiny_scene, "sensor": CAMERA}), camera, renderer="raster", progress=False)
    for split in ("train", "val", "test"):
        for a, b in zip(Dataset(clean).samples(split), Dataset(camera).samples(split), strict=True):
            assert np.array_equal(a.mask(), b.mask()) and np.array_equal(a.instance_map(), b.instance_map())
            assert not np.array_equal(a.image(), b.image())
            assert b.meta["spec"]["sensor"]["grey"] is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("jpeg_quality", [90, 50], "jpeg_quality: expected [min, max] with min <= max, got [90, 50]"),
        ("blur_px", [-1, 2], "sensor.blur_px"),
        ("gamma", [0, 1], "sensor.gamma"),
        ("iso", 100, "sensor.iso"),
    ],
)
def test_bad_sensor_settings_name_the_field(tiny_scene, field, value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({**tiny_scene, "sensor": {field: value}})
