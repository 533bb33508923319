"""A metal surface's `grinding:` section: each contrast scales its own term of the texture in the
raster view, the marks run along the plate's y axis, the section round-trips through the spec
and is refused on other families, and both views render it with exact labels."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from synth.config import load_config, parse_config
from synth.errors import ConfigError
from synth.layers import build_maps, window
from synth.raster import RasterRenderer, base_texture
from synth.scene import GrindingSpec, SceneSpec, sample_scene

SCENES = Path(__file__).resolve().parents[1] / "scenes"
WIN = window((300, 300), 0.1, (0, 0, 30, 30))


def ground(marks: float = 0.0, bands: float = 0.0, lines: float = 0.0, grain: float = 0.0, pattern="ground"):
    material = sample_scene(load_config(SCENES / "metal_tile.yaml"), 0).material
    grinding = GrindingSpec(marks=marks, bands=bands, lines=lines, grain=grain)
    return replace(material, pattern=pattern, scale_mm=0.6, color_variation=0.2, grinding=grinding)


def albedo(material) -> np.ndarray:
    return base_texture(material, WIN)[0].astype(np.float64)


def test_no_contrast_leaves_a_uniform_albedo() -> None:
    assert np.array_equal(albedo(ground()), np.ones((300, 300)))


@pytest.mark.parametrize("term", ["marks", "bands", "lines", "grain"])
def test_each_contrast_scales_its_own_term(term: str) -> None:
    one, three = (albedo(ground(**{term: c})) - 1 for c in (1.0, 3.0))
    assert one.std() > 0.005
    np.testing.assert_allclose(three, 3 * one, atol=1e-5)  # linear in its contrast, nothing else


def gradient_ratio(image: np.ndarray) -> float:
    gy, gx = np.gradient(image)
    return float((gx**2).mean() / (gy**2).mean())


def test_marks_and_bands_run_along_y_and_grain_has_no_direction() -> None:
    assert gradient_ratio(albedo(ground(marks=1))) > 20
    bands = albedo(ground(bands=1))
    assert bands.mean(axis=0).std() > 10 * bands.mean(axis=1).std()  # columns differ, rows alike
    assert 0.5 < gradient_ratio(albedo(ground(grain=1))) < 2


def test_bands_are_slower_than_marks() -> None:
    def fine_share(image: np.ndarray) -> float:
        detail = image - cv2.GaussianBlur(image, (0, 0), 5.0)
        return float(detail.std() / (image - image.mean()).std())

    assert fine_share(albedo(ground(bands=1))) < 0.3 < fine_share(albedo(ground(marks=1)))


def test_brushed_metal_has_marks_but_no_lines_or_grain() -> None:
    assert albedo(ground(marks=1, pattern="brushed")).std() > 0.005
    assert np.array_equal(albedo(ground(lines=3, grain=3, pattern="brushed")), np.ones((300, 300)))


def with_grinding(**contrasts: list[float]) -> dict:
    scene = load_config(SCENES / "metal_tile.yaml").model_dump(mode="json")
    scene["surface"]["grinding"] = contrasts
    scene["geometry"]["bend_deg"] = [0, 0]
    return scene


def test_grinding_round_trips_through_the_spec_and_changes_the_digest() -> None:
    plain = load_config(SCENES / "metal_tile.yaml")
    config = parse_config(with_grinding(marks=[1, 3], lines=[0, 0]))
    assert config.digest() != plain.digest()
    assert "grinding" not in sample_scene(plain, 0).to_dict()["material"]
    for index in range(6):
        spec = sample_scene(config, index)
        g = spec.material.grinding
        assert g is not None and 1 <= g.marks <= 3 and g.lines == 0 and g.bands == g.grain == 1
        assert SceneSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    # The section draws after everything the scene drew before: only the material gains it.
    before, after = sample_scene(parse_config(with_grinding()), 3), sample_scene(config, 3)
    assert replace(after, config_hash="", material=replace(after.material, grinding=None)) == replace(
        before, config_hash="", material=replace(before.material, grinding=None)
    )


@pytest.mark.parametrize(
    ("surface", "fragment"),
    [
        (
            {"family": "leather", "patterns": ["grain"], "grinding": {}},
            "grinding: only a metal surface has grinding marks, not leather",
        ),
        (
            {"grinding": {"marks": [1, 5]}},
            "surface.grinding.marks: expected [min, max] with 0.0 <= min <= max <= 4.0",
        ),
        ({"grinding": {"streaks": [1, 2]}}, "surface.grinding.streaks: unknown key"),
    ],
)
def test_bad_grinding_is_named(tiny_scene: dict, surface: dict, fragment: str) -> None:
    scene = copy.deepcopy(tiny_scene)
    scene["surface"].update({"family": "metal", "patterns": ["ground"], **surface})
    with pytest.raises(ConfigError) as raised:
        parse_config(scene, "scene.yaml")
    assert fragment in str(raised.value), str(raised.value)


def fine_std(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float((grey - cv2.GaussianBlur(grey, (0, 0), 2.0)).std())


def render_pair(renderer, low: float, high: float, size: int) -> tuple[SceneSpec, list]:
    """The same tile (a crack on it) at two grinding contrasts: the renders and their specs."""
    scene = with_grinding(marks=[low, low], bands=[low, low], lines=[low, low], grain=[low, low])
    scene["camera"]["resolution"] = [size, size]
    scene["render"]["samples"] = 4
    config = parse_config(scene)
    spec = next(s for s in (sample_scene(config, i) for i in range(40, 70)) if s.marks)
    results = []
    for contrast in (low, high):
        grinding = GrindingSpec(contrast, contrast, contrast, contrast)
        case = replace(spec, material=replace(spec.material, grinding=grinding))
        maps = build_maps(case)
        results.append((renderer.render(case, maps), maps))
    return spec, results


def test_raster_contrast_shows_in_the_render_and_labels_do_not_move() -> None:
    _, [(low, _), (high, _)] = render_pair(RasterRenderer(), 0.5, 3.0, 128)
    assert fine_std(high.rgb) > 2 * fine_std(low.rgb)
    assert low.instance_ids.any() and np.array_equal(low.instance_ids, high.instance_ids)


@pytest.mark.blender
def test_blender_contrast_shows_in_the_render_and_labels_do_not_move() -> None:
    pytest.importorskip("bpy")
    from synth.blender import BlenderRenderer

    with BlenderRenderer() as renderer:
        _, [(low, _), (high, _)] = render_pair(renderer, 0.0, 3.0, 48)
    assert fine_std(high.rgb) > 1.5 * fine_std(low.rgb)
    assert low.instance_ids.any() and np.array_equal(low.instance_ids, high.instance_ids)
