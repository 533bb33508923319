"""Strided tile grids cover images exactly, and an image's labels cut to its tiles reassemble."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.annotations import Annotations, ClassInfo
from synth.tiles import Tile, crop_annotations, strided_origins, tile_grid, tile_origins

CLASSES = (ClassInfo(1, "hole"), ClassInfo(2, "dust", "impurity"))


def test_strided_origins_by_hand() -> None:
    assert strided_origins(1024, 256, 256) == [0, 256, 512, 768]
    assert strided_origins(1024, 256, 128) == [0, 128, 256, 384, 512, 640, 768]
    # 1000 px: 4 tiles at most 256 apart, the last flush with the border, spread evenly
    assert strided_origins(1000, 256, 256) == [0, 248, 496, 744]
    assert strided_origins(200, 256, 256) == [0]
    with pytest.raises(ValueError, match="stride 300"):
        strided_origins(1000, 256, 300)
    with pytest.raises(ValueError, match="stride 0"):
        strided_origins(1000, 256, 0)


def test_overlap_origins_are_strided_origins() -> None:
    assert tile_origins(1001, 256, 0.35) == strided_origins(1001, 256, 166)


@given(st.integers(1, 3000), st.integers(1, 400), st.data())
def test_strided_origins_cover_the_axis_at_most_stride_apart(
    size: int, tile: int, data: st.DataObject
) -> None:
    stride = data.draw(st.integers(1, tile))
    origins = strided_origins(size, tile, stride)
    assert origins[0] == 0 and origins[-1] == max(size - tile, 0)
    assert all(0 < b - a <= stride for a, b in zip(origins, origins[1:], strict=False))


def test_grid_with_a_stride() -> None:
    tiles = tile_grid(600, 256, 256, stride=256)
    assert [(t.x0, t.y0, t.x1, t.y1) for t in tiles] == [
        (0, 0, 256, 256),
        (172, 0, 428, 256),
        (344, 0, 600, 256),
    ]
    assert tiles[0].size == (256, 256)


def labelled_image() -> Annotations:
    """A 40 x 100 image: a hole across the tile border at x = 50, a one-pixel-wide sliver
    reaching 2 px past it, a dust speck and a U-shape whose arms a tile cuts apart."""
    instance_map = np.zeros((40, 100), np.uint16)
    instance_map[5:15, 40:60] = 1  # hole, cut at x = 50
    instance_map[20:30, 48:52] = 2  # dust (impurity), cut at x = 50
    instance_map[32, 30:52] = 3  # hole sliver: 2 px to the right of x = 50
    instance_map[20:35, 80:95] = 4  # U: cut by the tile row at y = 20 into two arms below
    instance_map[20:30, 84:91] = 0
    return Annotations.from_instance_map(instance_map, {1: 1, 2: 2, 3: 1, 4: 1}, CLASSES, mm_per_px=0.1)


def test_tiles_of_a_grid_reassemble_the_labels_exactly() -> None:
    whole = labelled_image()
    instance_map, semantic = np.zeros_like(whole.instance_map), np.zeros_like(whole.semantic_mask())
    for tile in tile_grid(100, 40, 50, stride=50):
        part = crop_annotations(whole, tile)
        assert part.size == tile.size and part.mm_per_px == 0.1 and part.classes == CLASSES
        instance_map[tile.y0 : tile.y1, tile.x0 : tile.x1] = part.instance_map
        semantic[tile.y0 : tile.y1, tile.x0 : tile.x1] = part.semantic_mask()
    np.testing.assert_array_equal(instance_map, whole.instance_map)
    np.testing.assert_array_equal(semantic, whole.semantic_mask())


def test_a_cut_instance_keeps_its_visible_part_id_class_and_role() -> None:
    part = crop_annotations(labelled_image(), Tile(50, 0, 100, 40))
    by_id = {i.instance_id: i for i in part.instances}
    assert sorted(by_id) == [1, 2, 3, 4]
    assert by_id[1].bbox == (0, 5, 10, 10) and by_id[1].area_px == 100 and by_id[1].class_id == 1
    assert by_id[2].bbox == (0, 20, 2, 10) and part.class_by_id[by_id[2].class_id].kind == "impurity"
    assert by_id[3].area_px == 2
    assert by_id[4].area_px == 15 * 15 - 10 * 7 and by_id[4].area_mm2 == pytest.approx(155 * 0.01)
    assert not part.good  # the hole parts are defects; the dust alone would not be


def test_slivers_below_the_minimum_are_dropped_and_become_background() -> None:
    whole = labelled_image()
    part = crop_annotations(whole, Tile(50, 0, 100, 40), min_area_px=3)
    assert sorted(i.instance_id for i in part.instances) == [1, 2, 4]
    assert not (part.instance_map == 3).any() and part.semantic_mask()[32, 0:2].tolist() == [0, 0]
    # the same instance whole in another tile is kept
    left = crop_annotations(whole, Tile(0, 0, 50, 40), min_area_px=3)
    assert any(i.instance_id == 3 and i.area_px == 20 for i in left.instances)


def test_a_split_instance_stays_one_instance() -> None:
    part = crop_annotations(labelled_image(), Tile(75, 20, 100, 40))
    (u,) = part.instances
    assert u.instance_id == 4 and len(u.rings) == 1  # the arms join at the bottom: one ring
    arms = crop_annotations(labelled_image(), Tile(75, 20, 100, 30))
    (u,) = arms.instances
    assert len(u.rings) == 2 and u.area_px == 10 * 8


@settings(max_examples=25, deadline=None)
@given(st.integers(5, 60), st.data())
def test_overlapping_tiles_equal_the_crop_of_the_whole(tile: int, data: st.DataObject) -> None:
    whole = labelled_image()
    stride = data.draw(st.integers(1, tile))
    for window in tile_grid(100, 40, tile, stride=stride):
        part = crop_annotations(whole, window)
        np.testing.assert_array_equal(part.instance_map, window.crop(whole.instance_map))
        np.testing.assert_array_equal(part.semantic_mask(), window.crop(whole.semantic_mask()))


def test_a_tile_outside_the_image_is_refused() -> None:
    with pytest.raises(ValueError, match="100x40 image"):
        crop_annotations(labelled_image(), Tile(90, 0, 110, 40))
