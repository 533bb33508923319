"""Every defect kind of the taxonomy paints a labelled region with its physical signature."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from synth.config import DefectKind
from synth.layers import HEIGHT_SIGN, STROKE_KINDS, SurfaceMaps, build_maps, paint_mark
from synth.scene import MarkSpec

TEXEL = 0.05


def mark(kind: str, **overrides) -> MarkSpec:
    points = ((2.0, 5.0), (5.0, 5.5), (8.0, 5.0)) if kind in STROKE_KINDS else ((5.0, 5.0),)
    values = dict(
        instance_id=3,
        class_id=2,
        kind=kind,
        points_mm=points,
        size_mm=3.0,
        width_mm=0.4,
        depth_mm=0.2,
        reflectance=-0.1,
        roughness=0.1,
        angle_deg=30.0,
        seed=11,
    )
    values.update(overrides)
    return MarkSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [*typing.get_args(DefectKind), "fingerprint"])
def test_each_kind_paints_a_labelled_region(kind: str) -> None:
    maps = SurfaceMaps.empty((200, 200), TEXEL)
    paint_mark(maps, mark(kind))
    inside = maps.instance_ids == 3
    assert inside.sum() >= 20, f"{kind} painted {inside.sum()} texels"
    np.testing.assert_array_equal(maps.class_ids == 2, inside)
    sign = HEIGHT_SIGN.get(kind, -1.0)
    extreme = maps.height_mm[inside].max() if sign > 0 else maps.height_mm[inside].min()
    assert np.sign(extreme) == np.sign(sign), f"{kind}: height {extreme}"
    if kind != "fingerprint":
        assert (maps.reflectance[inside] < 0).all()  # reflectance -0.1 applied inside only
    assert not maps.reflectance[~inside].any()


def test_thin_scratch_still_covers_a_texel_along_its_length() -> None:
    maps = SurfaceMaps.empty((200, 200), TEXEL)
    paint_mark(maps, mark("scratch", width_mm=0.001))
    columns = np.nonzero((maps.instance_ids == 3).any(axis=0))[0]
    assert columns.min() <= 2.0 / TEXEL + 1 and columns.max() >= 8.0 / TEXEL - 2  # no gaps end to end
    assert len(columns) == columns.max() - columns.min() + 1


def test_defects_are_drawn_over_stains(tiny_scene: dict) -> None:
    from synth.config import parse_config
    from synth.scene import sample_scene, total_images

    config = parse_config({**tiny_scene, "impurities": [{**tiny_scene["impurities"][0], "probability": 1.0}]})
    for index in range(total_images(config)):
        spec = sample_scene(config, index)
        maps = build_maps(spec)
        present = set(np.unique(maps.instance_ids).tolist()) - {0}
        assert present <= set(spec.instance_classes)
        for m in spec.marks:  # a defect is never hidden under a stain
            assert m.instance_id in present


def test_uneven_is_a_band_across_the_width_of_about_its_width() -> None:
    """Like the real magnetic tiles' `uneven`: a full-width band, ragged edges, marks along y."""
    maps = SurfaceMaps.empty((200, 200), TEXEL)
    paint_mark(maps, mark("uneven", points_mm=((0.0, 5.0), (10.0, 5.0)), width_mm=2.0, reflectance=0.02))
    inside = maps.instance_ids == 3
    assert inside.any(axis=0).all()  # every column of the 10 mm wide map
    heights = inside.sum(axis=0) * TEXEL
    assert 2.0 * 0.8 < heights.mean() < 2.0 * 1.2 and heights.std() > 0  # ragged, about 2 mm tall
    band = maps.reflectance[90:110]  # the core rows: the texture varies across x, hardly along y
    assert band.std(axis=1).mean() > 3 * band.std(axis=0).mean()
