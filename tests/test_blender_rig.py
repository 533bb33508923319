"""Geometry of the Blender scene (plate, camera, lights): plain numpy, no bpy, no rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synth import rig
from synth.scene import CameraSpec, GeometrySpec, LightSpec


def light(kind: str, azimuth: float = 30.0, elevation: float = 40.0) -> LightSpec:
    return LightSpec(kind, azimuth, elevation, 200.0, 80.0, 12.0, 5000.0)


@pytest.mark.parametrize("kind", ["area", "bar", "ring"])
def test_emitters_face_the_plate_centre_and_share_the_power(kind: str) -> None:
    out = rig.emitters(light(kind))
    assert len(out) == (rig.RING_LEDS if kind == "ring" else 1)
    assert sum(e.power_w for e in out) == pytest.approx(12.0)
    for e in out:
        position, facing = e.matrix[:3, 3], -e.matrix[:3, 2]
        np.testing.assert_allclose(facing, -position / np.linalg.norm(position), atol=1e-9)
        np.testing.assert_allclose(e.matrix[:3, :3].T @ e.matrix[:3, :3], np.eye(3), atol=1e-9)


def test_light_pose_follows_azimuth_and_elevation() -> None:
    (e,) = rig.emitters(light("area", azimuth=90.0, elevation=30.0))
    # azimuth 90° is towards the image's top (+y), 200 mm away, 30° above the plate
    np.testing.assert_allclose(e.matrix[:3, 3], [0.0, 0.2 * math.cos(math.pi / 6), 0.1], atol=1e-9)


def test_bar_light_is_long_horizontal_and_across_the_light_direction() -> None:
    (e,) = rig.emitters(light("bar", azimuth=0.0, elevation=15.0))
    long_axis = e.matrix[:3, 0]
    assert e.shape == "RECTANGLE" and e.size_m > 10 * e.size_y_m
    np.testing.assert_allclose(np.abs(long_axis), [0.0, 1.0, 0.0], atol=1e-9)


def test_irradiance_of_a_light_straight_above() -> None:
    above = LightSpec("area", 0.0, 90.0, 200.0, 10.0, 10.0, 5000.0)
    assert rig.irradiance_at_centre((above,)) == pytest.approx(10.0 / (math.pi * 0.2**2))


def test_curved_tile_keeps_its_width_as_arc_length() -> None:
    geometry = GeometrySpec("curved_tile", 30.0, 20.0, 60.0)
    vertices, plate = rig.plate_grid(geometry, 64)
    top = vertices[:65]
    arc = np.linalg.norm(np.diff(top[:, [0, 2]], axis=0), axis=1).sum()
    assert arc == pytest.approx(0.030, rel=1e-3)
    assert top[:, 2].max() == pytest.approx(0.0, abs=1e-12)  # the crest is the origin
    assert top[0, 2] == pytest.approx(top[-1, 2])
    assert top[0, 2] < 0  # the flanks bend away from the camera
    np.testing.assert_allclose(vertices[65:, 1], -0.010)  # plate y = H is the image's bottom
    np.testing.assert_allclose(plate[:65, 1], 0.0)


def test_camera_tilt_orbits_the_plate_centre() -> None:
    camera = CameraSpec(64, 64, 200.0, 50.0, 10.0, False, tilt_deg=20.0, roll_deg=10.0)
    matrix = rig.camera_matrix(camera)
    assert np.linalg.norm(matrix[:3, 3]) == pytest.approx(0.2)
    np.testing.assert_allclose(-matrix[:3, 2], -matrix[:3, 3] / 0.2, atol=1e-9)
