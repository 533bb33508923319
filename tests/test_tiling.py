"""Tile grids cover images exactly; detections cut by tile borders come out once, whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.annotations import Prediction
from synth.tiles import Tile, detect_tiled, merge_detections, tile_grid, tile_origins, to_image


@given(st.integers(1, 5001), st.integers(16, 1100), st.floats(0.0, 0.9))
def test_origins_cover_the_axis_with_the_requested_overlap(size: int, tile: int, overlap: float):
    origins = tile_origins(size, tile, overlap)
    assert origins[0] == 0
    assert origins[-1] == max(size - tile, 0)  # flush with the far border
    for left, right in zip(origins, origins[1:], strict=False):
        assert left < right
        assert left + tile - right >= tile * overlap - 1e-9  # shared pixels
    assert len(origins) == len(set(origins))


def test_origins_by_hand() -> None:
    # stride floor(256 * 0.65) = 166, ceil(745 / 166) + 1 = 6 tiles spread over 745 px
    assert tile_origins(1001, 256, 0.35) == [0, 149, 298, 447, 596, 745]
    assert tile_origins(256, 256, 0.35) == [0]
    assert tile_origins(257, 256, 0.0) == [0, 1]
    with pytest.raises(ValueError, match="overlap 1.0"):
        tile_origins(100, 10, 1.0)


@pytest.mark.parametrize(("width", "height"), [(1001, 777), (257, 1999), (100, 50)])
def test_grid_covers_every_pixel_of_odd_images(width: int, height: int) -> None:
    tiles = tile_grid(width, height, 256, 0.35)
    seen = np.zeros((height, width), int)
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= width and 0 <= t.y0 < t.y1 <= height
        assert (t.x1 - t.x0, t.y1 - t.y0) == (min(256, width), min(256, height))
        seen[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert seen.min() >= 1
    if width > 256:
        assert max(t.x1 for t in tiles) == width


def perfect_detector(crops: list[np.ndarray]) -> list[list[Prediction]]:
    """Sees exactly the pixels of each class (pixel value = class + 1) in each tile."""
    results = []
    for crop in crops:
        found = []
        for cls in np.unique(crop[crop > 0]):
            count, labels, stats, _ = cv2.connectedComponentsWithStats((crop == cls).astype(np.uint8))
            for i in range(1, count):
                x, y, w, h = stats[i, :4]
                mask = labels[y : y + h, x : x + w] == i
                found.append(Prediction((x, y, x + w, y + h), 0.9, int(cls) - 1, mask, (x, y)))
        results.append(found)
    return results


def render(detections: list[Prediction], shape: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(shape, bool)
    for d in detections:
        x, y = d.mask_origin
        canvas[y : y + d.mask.shape[0], x : x + d.mask.shape[1]] |= d.mask
    return canvas


@settings(max_examples=60, deadline=None)
@given(x=st.integers(0, 690), y=st.integers(0, 490), w=st.integers(1, 600), h=st.integers(1, 400))
def test_a_defect_anywhere_comes_out_once_with_its_extent(x: int, y: int, w: int, h: int) -> None:
    image = np.zeros((500, 701), np.uint8)
    image[y : y + h, x : x + w] = 1
    x1, y1 = min(x + w, 701), min(y + h, 500)
    found = detect_tiled(image, perfect_detector, tile=256, overlap=0.3)
    assert len(found) == 1
    assert found[0].box == (x, y, x1, y1)
    np.testing.assert_array_equal(render(found, image.shape), image > 0)


def test_box_cut_by_a_border_merges_into_the_whole_one() -> None:
    # tiles [0, 128) and [72, 200) on x; the defect spans x 90..140
    tiles = tile_grid(200, 100, 128, 0.4)
    assert [(t.x0, t.x1) for t in tiles] == [(0, 128), (72, 200)]
    cut = to_image(Prediction((90, 20, 128, 40), 0.95, 0), tiles[0], 200, 100)
    whole = to_image(Prediction((18, 20, 68, 40), 0.7, 0), tiles[1], 200, 100)
    assert cut.truncated and not whole.truncated
    assert merge_detections([cut, whole]) == [whole]
    assert whole.box == (90, 20, 140, 40)


def test_fragments_of_a_large_defect_join_but_other_classes_do_not() -> None:
    tiles = tile_grid(200, 100, 128, 0.4)
    left = to_image(Prediction((40, 10, 128, 30), 0.6, 1), tiles[0], 200, 100)
    right = to_image(Prediction((0, 12, 98, 32), 0.8, 1), tiles[1], 200, 100)
    other = to_image(Prediction((0, 12, 98, 32), 0.5, 0), tiles[1], 200, 100)
    merged = merge_detections([left, right, other])
    assert [(d.class_id, d.box, d.score) for d in merged] == [
        (1, (40, 10, 170, 32), 0.8),
        (0, (72, 12, 170, 32), 0.5),
    ]


def test_duplicates_of_whole_detections_are_suppressed_per_class() -> None:
    a = Prediction((10, 10, 50, 50), 0.9, 0)
    b = Prediction((11, 10, 50, 51), 0.8, 0)
    c = Prediction((11, 10, 50, 51), 0.7, 1)
    assert merge_detections([b, a, c]) == [a, c]


def test_tile_crop_is_the_window() -> None:
    image = np.arange(100).reshape(10, 10)
    np.testing.assert_array_equal(Tile(2, 3, 5, 4).crop(image), [[32, 33, 34]])
