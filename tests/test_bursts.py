"""Multi-illumination bursts: one spec and one set of labels, one image per light set-up."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from evaluate.anomaly import score_split
from synth.config import parse_config
from synth.dataset import Dataset, DatasetError, read_view, verify
from synth.errors import ConfigError
from synth.layers import build_maps
from synth.raster import RasterRenderer
from synth.render import as_recorded, dataset_classes, render_dataset, render_sample
from synth.scene import SceneSpec, sample_scene, total_images
from train.patchcore.config import PatchCoreConfig
from train.yolo.training import load_dataset

BURSTS = [
    {"name": "raking0", "lights": [{"type": "bar", "elevation_deg": [10, 15], "azimuth_deg": [0, 0]}]},
    {"name": "raking90", "lights": [{"type": "bar", "elevation_deg": [10, 15], "azimuth_deg": [90, 90]}]},
    {"name": "diffuse", "lights": [{"type": "ring", "elevation_deg": [70, 90], "power_w": [5, 8]}]},
]
SETUPS = [b["name"] for b in BURSTS]


@pytest.fixture
def burst_scene(tiny_scene: dict) -> dict:
    tiny_scene["splits"] = {
        "train": {"count": 2, "good_fraction": 1.0},
        "test": {"count": 3, "good_fraction": 0.0},
    }
    return {**tiny_scene, "bursts": BURSTS}


@pytest.fixture
def burst_dataset(burst_scene: dict, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    render_dataset(parse_config(burst_scene), root, renderer="raster", progress=False)
    return root


def test_bursts_change_none_of_the_scenes_other_draws(tiny_scene: dict, burst_scene: dict) -> None:
    plain, bursty = parse_config(tiny_scene), parse_config(burst_scene)
    assert plain.digest() != bursty.digest()
    for index in range(total_images(plain)):
        a, b = sample_scene(plain, index), sample_scene(bursty, index)
        assert a.bursts == () and [x.name for x in b.bursts] == SETUPS
        assert replace(b, bursts=(), config_hash=a.config_hash) == a
        assert b.bursts[0].lights[0].azimuth_deg == 0.0 and b.bursts[1].lights[0].azimuth_deg == 90.0


def test_a_spec_without_bursts_stores_none_and_a_burst_spec_round_trips(
    tiny_scene: dict, burst_scene: dict
) -> None:
    assert "bursts" not in sample_scene(parse_config(tiny_scene), 0).to_dict()
    spec = sample_scene(parse_config(burst_scene), 3)
    assert SceneSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    ("names", "shown"),
    [(["a", "a"], "['a', 'a']"), (["max"], "['max']"), ([], "[]")],
)
def test_burst_names_must_be_unique_and_not_a_fused_view(
    tiny_scene: dict, names: list[str], shown: str
) -> None:
    bursts = [{"name": n, "lights": BURSTS[0]["lights"]} for n in names]
    with pytest.raises(ConfigError) as error:
        parse_config({**tiny_scene, "bursts": bursts})
    assert f"unique names other than ['max', 'mean', 'channels'], got {shown}" in str(error.value)


def test_each_set_up_is_the_spec_rendered_under_its_own_lights_with_the_same_ids(burst_scene: dict) -> None:
    spec = sample_scene(parse_config(burst_scene), 3)
    assert spec.marks
    result = RasterRenderer().render(spec, build_maps(spec))
    assert len(result.bursts) == 3 and result.rgb is result.bursts[0]
    for burst, image in zip(spec.bursts, result.bursts, strict=True):
        alone = replace(spec, lights=burst.lights, bursts=())
        single = RasterRenderer().render(alone, build_maps(alone))
        assert np.array_equal(single.rgb, image)
        assert np.array_equal(single.instance_ids, result.instance_ids)
        assert single.bursts == []
    assert not np.array_equal(result.bursts[0], result.bursts[1])  # raking from 0 and 90 deg differ


def test_a_burst_dataset_has_one_set_of_labels_and_an_image_per_set_up(burst_dataset: Path) -> None:
    assert verify(burst_dataset) == []
    dataset = Dataset(burst_dataset)
    for split in ("train", "test"):
        for sample in dataset.samples(split):
            assert sample.setups == SETUPS
            first = sample.burst_path("raking0").read_bytes()
            assert sample.image_path.read_bytes() == first  # images/<split>/<id>.png: the first set-up
            shapes = {read_view(sample.burst_path(s), None).shape for s in SETUPS}
            assert shapes == {(64, 64, 3)}
    names = sorted(p.name for p in (burst_dataset / "images" / "test").iterdir())
    assert names == sorted(f"00000{i}{s}.png" for i in (2, 3, 4) for s in ["", *(f"_{n}" for n in SETUPS)])
    for kind in ("masks", "instances", "labels", "labels_obb", "meta"):
        assert len(list((burst_dataset / kind / "test").iterdir())) == 3
    # Ultralytics reads a split folder whole, so dataset.yaml lists the samples' own images.
    data_yaml = yaml.safe_load((burst_dataset / "dataset.yaml").read_text())
    assert data_yaml["test"] == "images/test.txt"
    listed = (burst_dataset / "images" / "test.txt").read_text().splitlines()
    assert listed == [f"./test/00000{i}.png" for i in (2, 3, 4)]  # relative: the dataset may move
    expected = [(burst_dataset / "images" / "test" / f"00000{i}.png").resolve() for i in (2, 3, 4)]
    assert load_dataset(burst_dataset).images("test") == expected
    assert sorted((burst_dataset / "anomaly" / "test" / "good").glob("*")) == []
    coco = json.loads((burst_dataset / "coco" / "test.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [f"images/test/00000{i}.png" for i in (2, 3, 4)]


def test_the_labels_hold_for_every_set_up(burst_scene: dict, burst_dataset: Path) -> None:
    config = parse_config(burst_scene)
    for sample in Dataset(burst_dataset).samples("test"):
        spec = sample_scene(config, int(sample.id))
        for burst in spec.bursts:
            alone = replace(spec, lights=burst.lights, bursts=())
            ids = RasterRenderer().render(alone, build_maps(alone)).instance_ids
            assert np.array_equal(ids, sample.instance_map())


def test_a_moved_burst_dataset_lists_its_own_images_also_from_an_older_absolute_list(
    burst_dataset: Path, tmp_path: Path
) -> None:
    """Older datasets recorded their root and listed absolute paths; a copy reads its own."""
    original = burst_dataset.resolve()
    data = yaml.safe_load((burst_dataset / "dataset.yaml").read_text())
    (burst_dataset / "dataset.yaml").write_text(yaml.safe_dump({"path": str(original), **data}))
    old_list = "".join(f"{original}/images/test/00000{i}.png\n" for i in (2, 3, 4))
    (burst_dataset / "images" / "test.txt").write_text(old_list)
    moved = burst_dataset.rename(tmp_path / "renamed")
    copy = shutil.copytree(moved, tmp_path / "copy")
    expected = [copy / "images" / "test" / f"00000{i}.png" for i in (2, 3, 4)]
    assert load_dataset(copy).images("test") == expected
    (copy / "images" / "test" / "000003.png").unlink()
    with pytest.raises(ConfigError, match=rf"{copy}/images/test.txt: lists 1 image\(s\) that do not exist"):
        load_dataset(copy).images("test")


def test_verify_names_a_missing_or_wrong_sized_burst_file(burst_dataset: Path) -> None:
    (burst_dataset / "images" / "test" / "000003_raking90.png").unlink()
    cv2.imwrite(
        str(burst_dataset / "images" / "train" / "000000_diffuse.png"), np.zeros((32, 64, 3), np.uint8)
    )
    assert verify(burst_dataset) == [
        "train/000000: set-up diffuse image is (32, 64), meta says (64, 64)",
        "test/000003: missing images/test/000003_raking90.png",
    ]


def test_verify_names_a_sample_whose_set_ups_are_not_the_configs(burst_dataset: Path) -> None:
    path = burst_dataset / "meta" / "test" / "000002.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "bursts": ["raking0"]}))
    assert verify(burst_dataset) == [
        "test/000002: meta lists light set-ups ['raking0'], "
        "the recorded config ['raking0', 'raking90', 'diffuse']",
        "images/test/000002_diffuse.png: image without meta (unfinished sample)",
        "images/test/000002_raking90.png: image without meta (unfinished sample)",
    ]


def test_views_of_a_burst_sample(burst_dataset: Path) -> None:
    sample = Dataset(burst_dataset).samples("test")[0]
    images = np.stack([sample.image(s) for s in SETUPS]).astype(np.float64)
    assert np.array_equal(sample.image(), images[0])
    assert np.array_equal(sample.image("max"), images.max(axis=0))
    assert np.array_equal(sample.image("mean"), np.rint(images.mean(axis=0)))
    channels = sample.image("channels")
    assert channels.shape == (64, 64, 3)
    assert np.array_equal(channels[..., 1], cv2.cvtColor(sample.image("raking90"), cv2.COLOR_RGB2GRAY))
    assert np.array_equal(read_view(sample.image_path, "max"), sample.image("max"))
    with pytest.raises(DatasetError, match=r"test/000002: no light set-up 'side'; it has \['raking0', "):
        sample.image("side")


def test_every_view_of_a_sample_without_bursts_is_its_image(tiny_scene: dict, tmp_path: Path) -> None:
    render_dataset(parse_config(tiny_scene), tmp_path / "plain", renderer="raster", progress=False)
    sample = Dataset(tmp_path / "plain").samples("test")[0]
    for view in ("max", "mean", "channels", "raking0"):
        assert np.array_equal(sample.image(view), sample.image())
    with pytest.raises(DatasetError, match="not a sample image of a canonical dataset"):
        read_view(tmp_path / "plain" / "anomaly" / "test" / "good" / "x.png", "max")


def test_patchcore_stores_its_burst_view_only_when_set() -> None:
    assert "burst" not in PatchCoreConfig().to_dict()  # older coresets and caches keep their keys
    config = PatchCoreConfig(burst="max")
    assert PatchCoreConfig.from_dict(config.to_dict()) == config


def test_patchcore_trains_on_the_view_it_names(burst_dataset: Path, tmp_path: Path) -> None:
    from train.patchcore import Coreset, pretrain

    small = PatchCoreConfig(image_size=(48, 48), coreset_size=48, epochs=1, batch_size=4, sigma=1)
    viewed = pretrain(burst_dataset, small.replace(burst="raking90"))
    files = [s.burst_path("raking90") for s in Dataset(burst_dataset).samples("train") if s.good]
    assert len(files) == 2
    assert torch.equal(viewed.points, pretrain(files, small).points)  # the same pixels, read as files
    assert not torch.equal(viewed.points, pretrain(burst_dataset, small).points)  # not raking0's
    loaded = Coreset.load(viewed.save(tmp_path / "raking90.safetensors"))
    assert loaded.config.burst == "raking90"  # so evaluate anomaly scores the same view


def test_evaluation_scores_the_view_it_is_given(burst_dataset: Path) -> None:
    seen: list[np.ndarray] = []

    def predict(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        seen.extend(images)
        return np.zeros((len(images), 64, 64), np.float32), np.zeros(len(images))

    dataset = Dataset(burst_dataset)
    scored = score_split(dataset, "test", predict, view="mean")
    assert [s.id for s in scored] == ["000002", "000003", "000004"]
    for image, sample in zip(seen, dataset.samples("test"), strict=True):
        assert np.array_equal(image, sample.image("mean"))


def test_each_set_up_is_another_exposure_with_noise_of_its_own(burst_scene: dict) -> None:
    pinned = [{"type": "bar", "elevation_deg": [12, 12], "azimuth_deg": [0, 0], "power_w": [9, 9]}]
    twins = [{"name": "raking0", "lights": pinned}, {"name": "again", "lights": pinned}]  # one light twice
    config = parse_config({**burst_scene, "bursts": twins, "sensor": {"read_noise": [0.02, 0.02]}})
    sample = render_sample(RasterRenderer(), config, 3, dataset_classes(config))
    spec = sample_scene(config, 3)
    clean = RasterRenderer().render(spec, build_maps(spec))
    assert np.array_equal(clean.bursts[0], clean.bursts[1])
    assert np.array_equal(sample.bursts["raking0"], as_recorded(clean.bursts[0], spec))
    assert np.array_equal(sample.bursts["again"], as_recorded(clean.bursts[1], spec, 1))
    assert not np.array_equal(sample.bursts["raking0"], sample.bursts["again"])
    assert sample.image is sample.bursts["raking0"]
