"""scenes/commutator.yaml, matched to KolektorSDD's commutators: it validates, keeps the real
images' size, and every class renders in the raster view with exact labels."""

from __future__ import annotations

import numpy as np
import pytest

from synth.config import load_config
from synth.layers import build_maps
from synth.raster import RasterRenderer, unrealisable
from tests.test_matched_scenes import SCENES, assert_labels_follow_the_maps, small, with_only

SCENE = SCENES / "commutator.yaml"


def test_the_commutator_scene_has_the_real_images_size_and_cracks_across_them() -> None:
    config = load_config(SCENE)
    assert config.camera.resolution == (500, 1240) and not unrealisable(config)
    assert [(d.name, d.kind) for d in config.defects] == [("crack", "crack"), ("damage", "scratch")]
    assert all(d.angle_deg[1] <= 10 for d in config.defects)  # along the x axis, as the real ones


@pytest.mark.parametrize("class_name", [d.name for d in load_config(SCENE).defects])
def test_each_commutator_class_renders_with_exact_labels(class_name: str) -> None:
    config = load_config(SCENE, small("commutator"))
    spec = with_only(config, class_name)
    maps = build_maps(spec)
    result = RasterRenderer().render(spec, maps)
    assert result.rgb.shape == (64, 64, 3) and result.rgb.std() > 1.0
    present = set(np.unique(result.instance_ids).tolist()) - {0}
    assert present and present <= {m.instance_id for m in spec.marks}
    assert {spec.instance_classes[i] for i in present} == {spec.marks[0].class_id}
    assert_labels_follow_the_maps(spec, maps, result.instance_ids)
