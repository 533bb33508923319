"""The raster view's textures against the values they had before they were sped up.

`tests/data/raster_textures.npz` holds `base_texture` (albedo factor and height) of every
texture kind below on a 64 x 96 texel window, computed by the per-texel implementation that
the lattice-cached textures and compiled Voronoi search replaced (git revision ef2925f). The
new ones equal them within TOLERANCE: the Voronoi search compares squared distances (the
edge then differs in the last bit), and Perlin noise, value noise and the rest are the same
arithmetic, computed once per lattice point instead of once per texel and corner.
"""

from __future__ import annotations

from pathlib import Path

import noise
import numpy as np
import pytest

from synth import raster
from synth.config import load_config
from synth.layers import build_maps, improved_perlin, window
from synth.raster import base_texture
from synth.scene import GrainSpec, GrindingSpec, MaterialSpec, WeaveSpec, sample_scene

SCENES = Path(__file__).resolve().parents[1] / "scenes"
REFERENCE = Path(__file__).parent / "data" / "raster_textures.npz"
TOLERANCE = 1e-5  # largest difference allowed in the albedo factor and height (both ~1)


def material(family: str, pattern: str, **changes: object) -> MaterialSpec:
    fields: dict = dict(
        family=family,
        pattern=pattern,
        base_color=(0.5, 0.45, 0.4),
        color_variation=0.3,
        scale_mm=0.8,
        roughness=0.5,
        bump_strength=0.5,
        seed=1234,
    )
    return MaterialSpec(**{**fields, **changes})


TEXTURES = {
    "leather_perlin": material("leather", "grain"),
    "leather_grain": material(
        "leather", "grain", grain=GrainSpec(contrast=0.8, crease_width=0.03), scale_mm=2.0
    ),
    "leather_suede": material("leather", "suede", scale_mm=0.4),
    "textile_plain": material("textile", "plain"),
    "textile_twill": material("textile", "twill"),
    "textile_weave": material(
        "textile",
        "twill",
        scale_mm=0.47,
        weave=WeaveSpec(weft_ratio=0.9, repeat=3, direction=-1, weft_shade=0.4, gap_shade=0.7, mottle=0.2),
    ),
    "metal_brushed": material("metal", "brushed"),
    "metal_ground": material("metal", "ground"),
    "metal_grinding_ground": material(
        "metal", "ground", grinding=GrindingSpec(marks=1.0, bands=1.2, lines=0.5, grain=3.0), scale_mm=0.5
    ),
    "metal_grinding_brushed": material(
        "metal", "brushed", grinding=GrindingSpec(marks=0.8, bands=1.5, lines=0.4, grain=2.0)
    ),
}
WINDOW = window((2000, 2000), 0.05, (31.0, 17.0, 35.75, 20.15))  # 64 x 96 texels inside a plate


def textures() -> dict[str, np.ndarray]:
    out = {}
    for name, spec in TEXTURES.items():
        out[f"{name}_albedo"], out[f"{name}_height"] = base_texture(spec, WINDOW)
    return out


def test_the_window_is_the_one_the_reference_was_computed_on() -> None:
    assert WINDOW is not None
    assert (WINDOW.y_mm.size, WINDOW.x_mm.size) == (64, 96)


@pytest.mark.parametrize("name", sorted(TEXTURES))
def test_every_texture_kind_equals_its_reference(name: str) -> None:
    reference = np.load(REFERENCE)
    now = textures()
    for part in ("albedo", "height"):
        expected, got = reference[f"{name}_{part}"], now[f"{name}_{part}"]
        assert got.dtype == np.float32 and got.shape == expected.shape == (64, 96)
        assert np.abs(got - expected).max() <= TOLERANCE, f"{name} {part}"
        assert expected.std() > 0  # a texture, not a constant


def test_perlin_noise_is_pnoise2_to_the_bit() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.uniform(-3000, 3000, 300), rng.uniform(-3000, 3000, 200)
    expected = np.array([[noise.pnoise2(a, b) for a in x] for b in y], np.float32)
    np.testing.assert_array_equal(improved_perlin(x[None, :], y[:, None]), expected)


@pytest.mark.parametrize("scene", ["commutator", "leather_patch", "textile_aitex"])
def test_texels_outside_the_view_change_nothing(scene: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The view computes texture and shading on the texels the camera sees (and a margin):
    the image is the one computed on the whole plate, to the bit."""
    config = load_config(SCENES / f"{scene}.yaml", {"camera": {"resolution": [96, 64]}})
    spec = sample_scene(config, 0)
    maps = build_maps(spec)
    seen = raster.visible(spec, maps)
    assert seen.x_mm.size * seen.y_mm.size < maps.shape[0] * maps.shape[1]  # the plate is larger
    cropped = raster.RasterRenderer().render(spec, maps).rgb
    whole = window(maps.shape, maps.texel_mm, (0.0, 0.0, spec.geometry.width_mm, spec.geometry.height_mm))
    monkeypatch.setattr(raster, "visible", lambda spec, maps: whole)
    np.testing.assert_array_equal(raster.RasterRenderer().render(spec, maps).rgb, cropped)
