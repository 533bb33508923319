"""The water-stain model of DESIGN §4, checked as properties (hypothesis)."""

from __future__ import annotations

import math

import noise
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.config import ImpurityConfig
from synth.layers import SurfaceMaps, paint_stains, perlin, stain_fields, window
from synth.scene import StainSpec, jittered_centres, sample_stains

TEXEL = 0.1  # mm


def stain(**overrides: float) -> StainSpec:
    values = dict(
        instance_id=1,
        class_id=1,
        center_mm=(5.0, 5.0),
        radius_mm=2.0,
        noise_frequency=0.6,
        amplitude_mm=0.5,
        gamma=2.0,
        alpha=-0.1,
        heterogeneity=0.0,
        rim_darkening=0.0,
        noise_offset=(3.0, 7.0),
    )
    values.update(overrides)
    return StainSpec(**values)  # type: ignore[arg-type]


stain_params = st.fixed_dictionaries(
    {
        "center_mm": st.tuples(st.floats(3.5, 6.5), st.floats(3.5, 6.5)),
        "radius_mm": st.floats(0.3, 2.5),
        "noise_frequency": st.floats(0.05, 3.0),
        "amplitude_mm": st.floats(0.0, 0.8),
        "gamma": st.floats(0.3, 5.0),
        "alpha": st.floats(-0.5, 0.5),
        "noise_offset": st.tuples(st.floats(0, 100), st.floats(0, 100)),
    }
)


@settings(max_examples=40, deadline=None)
@given(stain_params)
def test_mask_is_exactly_the_points_within_the_perturbed_radius(params: dict) -> None:
    s = stain(**params)
    maps = SurfaceMaps.empty((100, 100), TEXEL)
    paint_stains(maps, (s,))
    full = window(maps.shape, TEXEL, (0, 0, 10, 10))
    d, r = stain_fields(s, full)
    expected = d <= r
    np.testing.assert_array_equal(maps.instance_ids == 1, expected)
    np.testing.assert_array_equal(maps.class_ids == 1, expected)
    # Reflectance: R_out - R_in = d̂^γ·α inside, untouched outside.
    d_hat = d / r
    np.testing.assert_allclose(
        maps.reflectance[expected], (d_hat**s.gamma * s.alpha)[expected], rtol=1e-5, atol=1e-7
    )
    assert not maps.reflectance[~expected].any()
    assert not maps.height_mm.any()  # stains change reflectance only


def test_reflectance_profile_rises_from_centre_to_rim() -> None:
    s = stain(amplitude_mm=0.0, alpha=-0.2, gamma=2.0)
    maps = SurfaceMaps.empty((100, 100), TEXEL)
    paint_stains(maps, (s,))
    row = maps.reflectance[49, 50:71]  # from the centre outwards
    d_hat = np.hypot((np.arange(50, 71) + 0.5) * TEXEL - 5.0, 49.5 * TEXEL - 5.0) / 2.0
    inside = d_hat <= 1
    np.testing.assert_allclose(row[inside], -0.2 * d_hat[inside] ** 2, atol=1e-6)
    assert abs(row[0]) < 1e-3 and row[inside][-1] < -0.18  # centre ≈ surface, rim differs most


def test_heterogeneity_and_rim_are_off_by_default_and_change_the_inside_when_on() -> None:
    plain, textured = SurfaceMaps.empty((100, 100), TEXEL), SurfaceMaps.empty((100, 100), TEXEL)
    paint_stains(plain, (stain(),))
    paint_stains(textured, (stain(heterogeneity=0.5, rim_darkening=0.8),))
    np.testing.assert_array_equal(plain.instance_ids, textured.instance_ids)  # same mask
    inside = plain.instance_ids > 0
    assert np.abs(plain.reflectance - textured.reflectance)[inside].max() > 0.01


@settings(max_examples=30, deadline=None)
@given(st.floats(0.5, 20.0), st.floats(1.0, 60.0), st.floats(1.0, 60.0), st.integers(0, 2**32 - 1))
def test_exactly_one_centre_per_jitter_cell_and_inside_it(
    cell: float, width: float, height: float, seed: int
) -> None:
    win = (2.0, 3.0, 2.0 + width, 3.0 + height)
    centres = jittered_centres(win, cell, np.random.default_rng(seed))
    nx, ny = math.ceil(width / cell - 1e-9), math.ceil(height / cell - 1e-9)
    cells = np.floor((centres - [2.0, 3.0]) / cell).astype(int)
    assert len(centres) == nx * ny
    assert len({tuple(c) for c in cells}) == nx * ny  # one per cell
    assert (cells >= 0).all() and (cells[:, 0] < nx).all() and (cells[:, 1] < ny).all()


def test_stain_count_scales_with_inverse_square_of_cell_size() -> None:
    counts = {}
    for cell in (2.5, 5.0, 10.0):
        config = ImpurityConfig(
            name="w", kind="water_stain", cell_mm=(cell, cell), radius_mm=(0.5, 1.0), amplitude_mm=(0, 0.2)
        )
        counts[cell] = len(sample_stains(config, (0, 0, 100, 100), np.random.default_rng(0), 1, 1))
    assert counts == {2.5: 1600, 5.0: 400, 10.0: 100}


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_a_stain_only_reaches_its_own_and_neighbouring_cells(seed: int) -> None:
    config = ImpurityConfig(
        name="w", kind="water_stain", cell_mm=(3.0, 3.0), radius_mm=(1.0, 2.2), amplitude_mm=(0.3, 0.8)
    )
    stains = sample_stains(config, (0, 0, 12, 12), np.random.default_rng(seed), 1, 1)
    maps = SurfaceMaps.empty((120, 120), TEXEL)
    paint_stains(maps, tuple(stains))
    rows, cols = np.nonzero(maps.instance_ids)
    owner = maps.instance_ids[rows, cols] - 1
    centre_cells = np.floor(np.array([s.center_mm for s in stains]) / 3.0).astype(int)
    pixel_cells = np.floor(np.stack([(cols + 0.5) * TEXEL, (rows + 0.5) * TEXEL], 1) / 3.0).astype(int)
    assert np.abs(pixel_cells - centre_cells[owner]).max() <= 1


def test_overlapping_stains_give_each_pixel_to_the_stain_it_is_deepest_in() -> None:
    a = stain(instance_id=1, center_mm=(4.0, 5.0), amplitude_mm=0.0)
    b = stain(instance_id=2, center_mm=(6.0, 5.0), amplitude_mm=0.0)
    maps = SurfaceMaps.empty((100, 100), TEXEL)
    paint_stains(maps, (a, b))
    assert set(np.unique(maps.instance_ids[49, :50])) == {0, 1}
    assert set(np.unique(maps.instance_ids[49, 51:])) == {0, 2}


def test_interpolated_perlin_matches_exact_noise() -> None:
    x = ((np.arange(300) + 0.5) * 0.05)[None, :]
    y = ((np.arange(200) + 0.5) * 0.05)[:, None]
    fast = perlin(x, y, 0.7, (11.0, 5.0))
    exact = np.array(
        [[noise.pnoise2(xx * 0.7 + 11.0, yy * 0.7 + 5.0) for xx in x.ravel()] for yy in y.ravel()]
    )
    assert np.abs(fast - exact).max() < 0.02
    assert exact.std() > 0.1  # the field is not trivially flat
