"""Photo surfaces (`surface.photo`): defects rendered onto real good photographs, raster view."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from evaluate import experiments
from evaluate.experiments.data import ExperimentData
from synth.cli import main as synth_cli
from synth.config import parse_config
from synth.dataset import Dataset
from synth.errors import ConfigError, DataError
from synth.layers import build_maps
from synth.photo import check_photo, photo_crop, photo_library
from synth.raster import RasterRenderer
from synth.render import render_dataset
from synth.rendering import to_srgb8
from synth.scene import SceneSpec, sample_scene, total_images
from tests.test_experiments import ROOT, _experiment, _fake_real


def write_photos(folder: Path, count: int = 3, size: tuple[int, int] = (80, 72), grey: bool = False) -> Path:
    """`count` smooth colour (or grey) photos of (width, height) px, each of its own tone."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        noise = rng.random((size[1], size[0], 3)).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), 3)
        smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
        image = (40 + 160 * smooth + 20 * i).clip(0, 255).astype(np.uint8)
        if grey:
            image = np.repeat(image[..., :1], 3, axis=2)
        cv2.imwrite(str(folder / f"good_{i}.png"), image)
    return folder


def photo_scene(tiny_scene: dict, folder: Path, **photo: object) -> dict:
    scene = copy.deepcopy(tiny_scene)
    scene["surface"]["photo"] = {"source": str(folder), **photo}
    return scene


def render(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
    result = RasterRenderer().render(spec, build_maps(spec))
    return result.rgb, result.instance_ids


def test_a_scene_without_photo_keeps_its_digest_specs_and_renders(tiny_scene: dict) -> None:
    absent = parse_config(tiny_scene)
    explicit = copy.deepcopy(tiny_scene)
    explicit["surface"]["photo"] = None
    given = parse_config(explicit)
    assert "photo" not in absent.dump()["surface"] and given.digest() == absent.digest()
    for index in range(total_images(absent)):
        spec, other = sample_scene(absent, index), sample_scene(given, index)
        assert spec.photo is None and "photo" not in spec.to_dict()
        assert spec.to_dict() == other.to_dict()
        rgb, ids = render(spec)
        other_rgb, other_ids = render(other)
        assert rgb.tobytes() == other_rgb.tobytes() and ids.tobytes() == other_ids.tobytes()


def test_labels_are_those_of_the_same_scene_without_photo(tiny_scene: dict, tmp_path: Path) -> None:
    tiny_scene["impurities"][0]["probability"] = 1.0
    plain = parse_config(tiny_scene)
    config = parse_config(photo_scene(tiny_scene, write_photos(tmp_path / "photos")))
    defective = 0
    for index in range(total_images(config)):
        spec = sample_scene(config, index)
        assert spec.photo is not None
        bare = replace(spec, photo=None)
        same = sample_scene(plain, index)  # every draw but the photo's is the scene's without it
        assert replace(spec, photo=None, config_hash="") == replace(same, config_hash="")
        maps, bare_maps = build_maps(spec), build_maps(bare)
        assert np.array_equal(maps.class_ids, bare_maps.class_ids)
        assert np.array_equal(maps.instance_ids, bare_maps.instance_ids)
        rgb, ids = render(spec)
        bare_rgb, bare_ids = render(bare)
        assert np.array_equal(ids, bare_ids) and not np.array_equal(rgb, bare_rgb)
        defective += not spec.good
    assert defective and spec.stains  # defects and stains were labelled


def test_the_crop_is_drawn_per_seed_and_recorded_in_the_spec(tiny_scene: dict, tmp_path: Path) -> None:
    folder = write_photos(tmp_path / "photos")
    config = parse_config(photo_scene(tiny_scene, folder))
    specs = [sample_scene(config, i) for i in range(total_images(config))]
    assert specs == [sample_scene(config, i) for i in range(total_images(config))]
    for spec in specs:
        photo = spec.photo
        assert photo is not None
        assert spec.to_dict()["photo"] == {
            "source": str(folder),
            "path": photo.path,
            "box": photo.box,
            "scale": photo.scale,
            "flip": photo.flip,
            "turns": photo.turns,
            "gain": photo.gain,
        }
        assert SceneSpec.from_dict(spec.to_dict()) == spec
        x0, y0, x1, y1 = photo.box
        assert 0 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 72
        side = int(np.ceil(64 * photo.scale - 1e-9))
        assert (x1 - x0, y1 - y0) == (side, side) and 0.9 <= photo.scale <= 1.1 and 0.9 <= photo.gain <= 1.1
        crop = photo_crop(photo)
        assert crop.shape == (side, side, 3) and crop.dtype == np.float32
    drawn = {(s.photo.path, s.photo.box, s.photo.flip, s.photo.turns) for s in specs if s.photo}
    assert len(drawn) == len(specs)  # every image its own crop
    assert {s.photo.turns for s in specs if s.photo} > {0} and {s.photo.flip for s in specs if s.photo} == {
        False,
        True,
    }
    reseeded = parse_config({**photo_scene(tiny_scene, folder), "seed": 4})
    assert [sample_scene(reseeded, i).photo for i in range(len(specs))] != [s.photo for s in specs]


def test_a_defect_changes_pixels_only_near_its_mask(tiny_scene: dict, tmp_path: Path) -> None:
    tiny_scene["splits"]["train"]["good_fraction"] = 0.0
    tiny_scene["impurities"][0]["probability"] = 1.0
    config = parse_config(photo_scene(tiny_scene, write_photos(tmp_path / "photos")))
    for index in range(4):
        spec = sample_scene(config, index)
        assert spec.marks and spec.stains
        rgb, ids = render(spec)
        clean, _ = render(replace(spec, marks=(), stains=()))
        changed = np.abs(rgb.astype(int) - clean.astype(int)).max(axis=2) > 0
        near = cv2.dilate((ids > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # 3 px around
        assert changed.any() and not (changed & ~near).any()


def test_a_flat_lit_clean_photo_scene_shows_the_crop(tiny_scene: dict, tmp_path: Path) -> None:
    tiny_scene["lights"] = [{"type": "area", "elevation_deg": [90, 90], "power_w": [12.75, 12.75]}]
    tiny_scene["surface"]["roughness"] = [1.0, 1.0]  # no gloss: ambient 0.15 + light 0.85 = 1
    tiny_scene["impurities"] = []
    tiny_scene["splits"] = {"train": {"count": 6, "good_fraction": 1.0}}
    config = parse_config(photo_scene(tiny_scene, write_photos(tmp_path / "photos"), gain=[0.6, 0.8]))
    for index in range(6):
        spec = sample_scene(config, index)
        assert spec.photo is not None and not spec.marks
        rgb, _ = render(spec)
        crop = to_srgb8(photo_crop(spec.photo))  # the crop in the render's orientation, times its gain
        expected = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_LINEAR)
        # as bright as the crop; apart from that, the view's anti-aliasing and resampling only
        difference = rgb.astype(int) - expected.astype(int)
        assert abs(difference.mean()) < 0.5 and np.abs(difference).mean() < 2.5
        assert np.abs(difference).max() <= 12


def test_bad_photo_sources_are_refused_naming_the_culprit(tiny_scene: dict, tmp_path: Path) -> None:
    def refusal(scene: dict, renderer: str = "raster") -> str:
        with pytest.raises((DataError, ConfigError)) as info:
            check_photo(parse_config(scene), renderer)
        assert "\n" not in str(info.value)
        return str(info.value)

    (tmp_path / "empty").mkdir()
    assert "surface.photo.source" in refusal(photo_scene(tiny_scene, tmp_path / "empty"))
    assert "no images" in refusal(photo_scene(tiny_scene, tmp_path / "empty"))
    assert "neither a dataset nor a folder" in refusal(photo_scene(tiny_scene, tmp_path / "missing"))
    small = write_photos(tmp_path / "small", size=(80, 50))
    message = refusal(photo_scene(tiny_scene, small))
    assert str(small / "good_0.png") in message and "smaller than the 58 x 58 px crop" in message
    grey = write_photos(tmp_path / "grey", grey=True)
    coloured = copy.deepcopy(tiny_scene)
    coloured["surface"]["color_high"] = [0.3, 0.25, 0.2]
    message = refusal(photo_scene(coloured, grey))
    assert str(grey / "good_0.png") in message and "grey" in message
    check_photo(parse_config(photo_scene(tiny_scene, grey)), "raster")  # a grey scene takes grey photos
    coloured["sensor"] = {"grey": True}
    check_photo(parse_config(photo_scene(coloured, grey)), "raster")  # so does a grey camera
    photos = write_photos(tmp_path / "photos")
    message = refusal(photo_scene(tiny_scene, photos), "cycles")
    assert "surface.photo" in message and "--renderer raster" in message


def test_a_dataset_of_defective_images_only_is_refused(tiny_scene: dict, tmp_path: Path) -> None:
    defective = copy.deepcopy(tiny_scene)
    defective["splits"] = {"train": {"count": 2, "good_fraction": 0.0}}
    render_dataset(parse_config(defective), tmp_path / "defective", renderer="raster", progress=False)
    config = parse_config(photo_scene(tiny_scene, tmp_path / "defective"))
    with pytest.raises(DataError, match=r"surface.photo.source: .*defective has no good train image"):
        check_photo(config, "raster")
    good = copy.deepcopy(tiny_scene)
    good["splits"] = {"train": {"count": 2, "good_fraction": 1.0}, "test": {"count": 2, "good_fraction": 0.0}}
    render_dataset(parse_config(good), tmp_path / "good", renderer="raster", progress=False)
    train = sorted(s.image_path for s in Dataset(tmp_path / "good").samples("train"))
    assert [p.path for p in photo_library(str(tmp_path / "good"))] == train  # good train images only
    spec = sample_scene(parse_config(photo_scene(tiny_scene, tmp_path / "good", scale=[0.9, 1.0])), 0)
    assert spec.photo is not None and tmp_path / "good" / spec.photo.path in train


def test_the_cli_refuses_before_writing_anything(tiny_scene: dict, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    scene = tmp_path / "scene.yaml"
    scene.write_text(yaml.safe_dump(photo_scene(tiny_scene, tmp_path / "empty")))
    for renderer in ("raster", "cycles"):
        out = tmp_path / f"out-{renderer}"
        result = CliRunner().invoke(
            synth_cli, ["render", str(scene), "--out", str(out), "--renderer", renderer]
        )
        assert result.exit_code != 0 and "surface.photo" in result.output
        assert not out.exists()


def test_source_real_in_an_experiment_is_its_imported_real_dataset(tmp_path: Path) -> None:
    _fake_real(tmp_path / "real")
    config = experiments.load_experiment(_experiment(tmp_path))
    config.scenarios[1].overrides["surface"] = {"photo": {"source": "real"}}
    data = ExperimentData(config, tmp_path / "out")
    recipe = data.synthetic_recipe(config.scenarios[1])
    assert recipe["overrides"]["surface"]["photo"]["source"] == str(data.real_root)
    assert recipe["real"] == data.real_recipe()
    assert "real" not in data.synthetic_recipe(config.scenarios[0])  # no photo: the recipe is as before
    config.synthetic.scene = str(ROOT / "scenes" / "commutator_photo.yaml")  # `real` in the scene file
    recipe = data.synthetic_recipe(config.scenarios[0])
    assert recipe["overrides"]["surface"]["photo"]["source"] == str(data.real_root)
