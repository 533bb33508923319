"""SceneSpec sampling: deterministic per (config, seed, index), shardable, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.config import parse_config
from synth.layers import build_maps
from synth.render import scaled_config
from synth.scene import SceneSpec, sample_scene, shard_indices, split_of, total_images


def test_same_index_same_spec_and_maps(tiny_scene: dict) -> None:
    config = parse_config(tiny_scene)
    for index in range(total_images(config)):
        a, b = sample_scene(config, index), sample_scene(config, index)
        assert a == b
        ma, mb = build_maps(a), build_maps(b)
        for name in ("reflectance", "roughness", "height_mm", "instance_ids", "class_ids"):
            np.testing.assert_array_equal(getattr(ma, name), getattr(mb, name))


def test_seed_changes_the_sample(tiny_scene: dict) -> None:
    a = sample_scene(parse_config(tiny_scene), 5)
    tiny_scene["seed"] = 99
    assert sample_scene(parse_config(tiny_scene), 5).material != a.material


def test_json_round_trip(tiny_scene: dict) -> None:
    config = parse_config(tiny_scene)
    for index in range(total_images(config)):
        spec = sample_scene(config, index)
        assert SceneSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_shards_partition_the_images(tiny_scene: dict) -> None:
    config = parse_config(tiny_scene)
    shards = [shard_indices(config, i, 3) for i in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))
    with pytest.raises(ValueError, match="shard 3 is not in 0..2"):
        shard_indices(config, 3, 3)


def test_splits_and_good_fraction(tiny_scene: dict) -> None:
    config = parse_config(tiny_scene)
    assert [split_of(config, i) for i in range(10)] == ["train"] * 4 + ["val"] * 2 + ["test"] * 4
    train = [sample_scene(config, i) for i in range(4)]
    assert all(s.good and not s.marks for s in train)  # good_fraction 1.0: no defects
    defective = [sample_scene(config, i) for i in range(10) if not sample_scene(config, i).good]
    assert all(1 <= len(s.marks) <= 2 for s in defective)
    with pytest.raises(IndexError, match="beyond the 10 images"):
        split_of(config, 10)


def test_instances_are_numbered_and_classed(tiny_scene: dict) -> None:
    config = parse_config(tiny_scene)
    for index in range(10):
        spec = sample_scene(config, index)
        ids = sorted(spec.instance_classes)
        assert ids == list(range(1, len(ids) + 1))
        assert set(spec.instance_classes.values()) <= {1, 2, 3}
        x0, y0, x1, y1 = spec.visible_window_mm
        for mark in spec.marks:
            assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in mark.points_mm)


def test_scaled_config_keeps_proportions(tiny_scene: dict) -> None:
    config = scaled_config(parse_config(tiny_scene), 5)
    assert config.split_counts() == {"train": 2, "val": 1, "test": 2}
    with pytest.raises(ValueError, match="at least 1"):
        scaled_config(config, 0)


def test_linear_defects_follow_their_angle_range(tiny_scene: dict) -> None:
    tiny_scene["defects"][0]["angle_deg"] = [80, 100]  # scratches along y, as cracks on ground ferrite
    tiny_scene["splits"] = {"test": {"count": 30, "good_fraction": 0.0}}
    config = parse_config(tiny_scene)
    scratches = [m for i in range(30) for m in sample_scene(config, i).marks if m.kind == "scratch"]
    assert len(scratches) >= 5
    for mark in scratches:
        assert 80 <= mark.angle_deg <= 100
        (xa, ya), (xb, yb) = mark.points_mm[0], mark.points_mm[-1]
        assert abs(yb - ya) > 2 * abs(xb - xa)  # the skeleton runs along y (clipping keeps that)
