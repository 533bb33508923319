"""The annotation type: exact boxes, polygon round trips, YOLO and COCO agreement, validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from synth.annotations import AnnotationError, Annotations, ClassInfo, iou, rasterize_rings

CLASSES = (ClassInfo(1, "scratch"), ClassInfo(2, "hole"), ClassInfo(3, "water_stain", "impurity"))

shape_st = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["ellipse", "line", "ring", "rect", "two_parts"]),
        "cx": st.integers(8, 88),
        "cy": st.integers(8, 56),
        "a": st.integers(3, 20),
        "b": st.integers(2, 14),
        "angle": st.integers(0, 179),
        "class_id": st.integers(1, 3),
    }
)


def draw(shape: dict, size: tuple[int, int] = (64, 96)) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    c, a, b = (shape["cx"], shape["cy"]), shape["a"], shape["b"]
    if shape["kind"] == "ellipse":
        cv2.ellipse(mask, c, (a, b), shape["angle"], 0, 360, 1, -1)
    elif shape["kind"] == "line":
        end = (
            int(c[0] + a * np.cos(np.radians(shape["angle"]))),
            int(c[1] + a * np.sin(np.radians(shape["angle"]))),
        )
        cv2.line(mask, c, end, 1, max(1, b // 4))
    elif shape["kind"] == "ring":
        cv2.circle(mask, c, a + 3, 1, -1)
        cv2.circle(mask, c, max(1, a // 2), 0, -1)
    elif shape["kind"] == "rect":
        cv2.rectangle(mask, (c[0] - a, c[1] - b), (c[0] + a, c[1] + b), 1, -1)
    else:
        cv2.circle(mask, c, b, 1, -1)
        cv2.circle(mask, (c[0] + 2 * b + a, c[1]), b, 1, -1)
    return mask.astype(bool)


def annotations_of(shapes: list[dict]) -> Annotations:
    instance_map = np.zeros((64, 96), np.uint16)
    classes = {}
    for n, shape in enumerate(shapes, 1):
        instance_map[draw(shape)] = n
        classes[n] = shape["class_id"]
    present = set(np.unique(instance_map).tolist())
    return Annotations.from_instance_map(
        instance_map, {k: v for k, v in classes.items() if k in present}, CLASSES, 0.05
    )


ISLAND_IN_HOLE = [  # a ring drawn over a two-part shape leaves a part of it inside the ring's hole
    {"kind": "two_parts", "cx": 71, "cy": 9, "a": 3, "b": 9, "angle": 0, "class_id": 1},
    {"kind": "ring", "cx": 71, "cy": 9, "a": 5, "b": 2, "angle": 0, "class_id": 1},
]


@settings(max_examples=60, deadline=None)
@given(st.lists(shape_st, min_size=1, max_size=5))
@example(ISLAND_IN_HOLE)
def test_polygons_boxes_and_areas_round_trip(shapes: list[dict]) -> None:
    ann = annotations_of(shapes)
    for inst in ann.instances:
        mask = ann.instance_map == inst.instance_id
        ys, xs = np.nonzero(mask)
        assert inst.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert inst.area_px == mask.sum()
        assert inst.area_mm2 == pytest.approx(mask.sum() * 0.05**2)
        redrawn = rasterize_rings(inst.rings, ann.size, inst.holes)
        if inst.area_px >= 20:
            assert iou(redrawn, mask) >= 0.95
        rows, cols = np.nonzero(redrawn)
        assert (cols.min(), rows.min()) == inst.bbox[:2]  # polygon extent = box


single_part_st = shape_st.filter(lambda s: s["kind"] in ("ellipse", "line", "rect"))


@settings(max_examples=40, deadline=None)
@given(st.lists(single_part_st, min_size=1, max_size=5))
def test_yolo_segment_and_detect_agree_with_masks(shapes: list[dict]) -> None:
    """YOLO has one polygon per instance: bridges of multi-part ones are tested separately."""
    ann = annotations_of(shapes)
    height, width = ann.size
    segment = Annotations.from_yolo(ann.to_yolo("segment"), ann.size, CLASSES)
    lines = ann.to_yolo("detect").splitlines()
    assert [i.class_id for i in segment.instances] == [i.class_id for i in ann.instances]
    for inst, parsed, line in zip(ann.instances, segment.instances, lines, strict=True):
        if len(inst.rings) == 1 and not inst.holes and inst.area_px >= 20:
            assert (
                iou(ann.instance_map == inst.instance_id, segment.instance_map == parsed.instance_id) >= 0.95
            )
        x, y, w, h = inst.bbox
        values = [float(v) for v in line.split()]
        assert values[0] == inst.class_id - 1
        assert values[1:] == pytest.approx(
            [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height], abs=1e-6
        )


def test_multi_part_and_holed_instances_stay_one_instance() -> None:
    ann = annotations_of(
        [
            {"kind": "two_parts", "cx": 20, "cy": 30, "a": 10, "b": 6, "angle": 0, "class_id": 2},
            {"kind": "ring", "cx": 70, "cy": 30, "a": 12, "b": 3, "angle": 0, "class_id": 3},
        ]
    )
    parts, ring = ann.instances
    assert len(parts.rings) == 2 and not parts.holes
    assert len(ring.rings) == 1 and len(ring.holes) == 1
    assert len(ann.to_yolo().splitlines()) == 2  # one YOLO polygon each, bridged
    # The hole survives the round trip through rings + holes.
    assert (
        iou(rasterize_rings(ring.rings, ann.size, ring.holes), ann.instance_map == ring.instance_id) >= 0.95
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(shape_st, min_size=1, max_size=5))
def test_coco_rle_is_exact_and_loads_with_pycocotools(shapes: list[dict]) -> None:
    ann = annotations_of(shapes)
    for entry, inst in zip(ann.to_coco(image_id=7, first_annotation_id=100), ann.instances, strict=True):
        rle = dict(entry["segmentation"], counts=entry["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(
            coco_mask.decode(rle).astype(bool), ann.instance_map == inst.instance_id
        )
        assert entry["bbox"] == list(map(float, inst.bbox))
        assert entry["area"] == inst.area_px and entry["image_id"] == 7


def test_semantic_and_defect_masks() -> None:
    ann = annotations_of(
        [
            {"kind": "rect", "cx": 20, "cy": 20, "a": 5, "b": 5, "angle": 0, "class_id": 1},
            {"kind": "rect", "cx": 60, "cy": 20, "a": 5, "b": 5, "angle": 0, "class_id": 3},
        ]
    )
    semantic = ann.semantic_mask()
    assert semantic[20, 20] == 1 and semantic[20, 60] == 3 and semantic[0, 0] == 0
    assert ann.defect_mask()[20, 20] and not ann.defect_mask()[20, 60]  # impurities are not defects
    assert not ann.good
    only_stain = Annotations.from_instance_map((semantic == 3).astype(np.uint16), {1: 3}, CLASSES)
    assert only_stain.good


def test_from_semantic_mask_splits_components() -> None:
    mask = np.zeros((20, 30), np.uint8)
    mask[2:5, 2:5] = 1
    mask[10:12, 20:25] = 1
    mask[15:18, 2:4] = 3
    ann = Annotations.from_semantic_mask(mask, CLASSES)
    assert sorted((i.class_id, i.area_px) for i in ann.instances) == [(1, 9), (1, 10), (3, 6)]
    with pytest.raises(AnnotationError, match=r"class ids \[9\]"):
        Annotations.from_semantic_mask(np.full((4, 4), 9, np.uint8), CLASSES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5 0.5 0.5 0.1 0.1", "class 5 unknown, expected 0..2"),
        ("0 0.5 0.5 0.1", "expected 4 box values or an even number"),
        ("0 0.1 0.1 0.2 0.2 0.3", "expected 4 box values or an even number"),
        ("0 a b c d", "expected numbers"),
        ("1.5 0.5 0.5 0.1 0.1", "class 1.5 unknown"),
    ],
)
def test_bad_yolo_lines_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(AnnotationError, match="labels/x.txt:2: " + message.replace("(", r"\(")):
        Annotations.from_yolo("0 0.5 0.5 0.2 0.2\n" + text, (10, 10), CLASSES, source="labels/x.txt")


def test_validation_on_construction() -> None:
    instance_map = np.zeros((8, 8), np.uint16)
    instance_map[1:3, 1:3] = 4
    with pytest.raises(AnnotationError, match=r"instance ids \[4\] have no class"):
        Annotations.from_instance_map(instance_map, {}, CLASSES)
    with pytest.raises(AnnotationError, match="class id 9"):
        Annotations.from_instance_map(instance_map, {4: 9}, CLASSES)
    with pytest.raises(AnnotationError, match="2-D uint16"):
        Annotations(np.zeros((8, 8), np.int32), (), CLASSES)
    with pytest.raises(AnnotationError, match="unique and non-zero"):
        Annotations(np.zeros((8, 8), np.uint16), (), (ClassInfo(0, "bg"),))
