"""Scene configs: shipped ones load; bad ones are reported with path, value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synth.cli import main as synth_cli
from synth.config import ConfigError, load_config, parse_config
from synth.scene import SceneSpec, sample_scene

from .conftest import REPO


@pytest.mark.parametrize("path", sorted((REPO / "scenes").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenes_are_valid(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem
    assert sum(config.split_counts().values()) > 0


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "scene.yaml")
    return str(info.value)


BAD_CONFIGS = [
    # (description, mutation, fragments the message must contain)
    ("unknown top-level key", lambda c: c.update(colour="red"), ["colour", "unknown key"]),
    ("unknown nested key", lambda c: c["camera"].update(fov=30), ["camera.fov", "unknown key"]),
    (
        "reversed range",
        lambda c: c["surface"].update(roughness=[0.8, 0.2]),
        ["surface.roughness", "min <= max", "[0.8, 0.2]"],
    ),
    (
        "range out of bounds",
        lambda c: c["surface"].update(roughness=[0.2, 1.5]),
        ["surface.roughness", "<= 1.0"],
    ),
    ("unknown family", lambda c: c["surface"].update(family="wood"), ["surface.family", "leather", "'wood'"]),
    (
        "pattern of another family",
        lambda c: c["surface"].update(patterns=["twill"]),
        ["surface", "twill", "ground"],
    ),
    ("missing camera", lambda c: c.pop("camera"), ["camera", "Field required"]),
    ("resolution too small", lambda c: c["camera"].update(resolution=[8, 64]), ["camera.resolution.0", "16"]),
    (
        "unknown defect kind",
        lambda c: c["defects"][0].update(kind="smudge"),
        ["defects.0.kind", "'smudge'", "scratch"],
    ),
    ("duplicate class names", lambda c: c["defects"][1].update(name="scratch"), ["unique", "scratch"]),
    (
        "stain larger than its cell",
        lambda c: c["impurities"][0].update(radius_mm=[5, 9]),
        ["impurities.0", "cell_mm"],
    ),
    ("unknown split", lambda c: c["splits"].update(holdout={"count": 3}), ["splits.holdout"]),
    (
        "negative count",
        lambda c: c["splits"]["train"].update(count=-1),
        ["splits.train.count", "greater than or equal to 0"],
    ),
    ("no lights", lambda c: c.update(lights=[]), ["lights", "at least 1"]),
    (
        "colour channel above 1",
        lambda c: c["surface"].update(color_high=[1.2, 0.3, 0.3]),
        ["color_high", "[0, 1]"],
    ),
    ("light count reversed", lambda c: c["lights"][0].update(count=[3, 1]), ["lights.0", "count"]),
    (
        "defect angle beyond 180",
        lambda c: c["defects"][0].update(angle_deg=[170, 200]),
        ["defects.0.angle_deg", "<= 180.0", "[170, 200]"],
    ),
    (
        "adaptive threshold of zero",
        lambda c: c["render"].update(adaptive_threshold=0),
        ["render.adaptive_threshold", "greater than 0"],
    ),
    (
        "adaptive threshold above 1",
        lambda c: c["render"].update(adaptive_threshold=2),
        ["render.adaptive_threshold", "less than or equal to 1"],
    ),
]


@pytest.mark.parametrize(
    ("mutation", "fragments"), [b[1:] for b in BAD_CONFIGS], ids=[b[0] for b in BAD_CONFIGS]
)
def test_bad_config_messages(tiny_scene: dict, mutation, fragments: list[str]) -> None:
    mutation(tiny_scene)
    message = _error(tiny_scene)
    assert message.startswith("scene.yaml:")
    for fragment in fragments:
        assert fragment in message, message


def test_all_problems_reported_at_once(tiny_scene: dict) -> None:
    tiny_scene["surface"]["roughness"] = [0.9, 0.1]
    tiny_scene["camera"]["focal_mm"] = -5
    tiny_scene["bogus"] = 1
    message = _error(tiny_scene)
    assert "3 problem(s)" in message
    assert "surface.roughness" in message and "camera.focal_mm" in message and "bogus" in message


def test_yaml_syntax_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read scene config"):
        load_config(tmp_path / "absent.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(listed)


def test_validate_command_reports_without_traceback(tmp_path: Path, tiny_scene: dict) -> None:
    tiny_scene["surface"]["roughness"] = [0.9, 0.1]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny_scene))
    result = CliRunner().invoke(synth_cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert "surface.roughness" in result.output and "Traceback" not in result.output
    tiny_scene["surface"]["roughness"] = [0.1, 0.9]
    path.write_text(yaml.safe_dump(tiny_scene))
    result = CliRunner().invoke(synth_cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid (metal, 10 images" in result.output


def test_digest_tracks_content(tiny_scene: dict) -> None:
    a = parse_config(tiny_scene)
    tiny_scene["seed"] = 4
    assert parse_config(tiny_scene).digest() != a.digest()
    tiny_scene["seed"] = 3
    assert parse_config(tiny_scene).digest() == a.digest()


def test_adaptive_sampling_is_off_unless_given_and_leaves_other_scenes_alone(tiny_scene: dict) -> None:
    plain = parse_config(tiny_scene)
    assert plain.digest() == "e8004833fd4fe555"  # the tiny scene's hash before the option existed
    assert "adaptive_threshold" not in plain.dump()["render"]
    assert "adaptive_threshold" not in sample_scene(plain, 0).to_dict()["render"]  # sample meta too
    unset = {**tiny_scene, "render": {**tiny_scene["render"], "adaptive_threshold": None}}
    assert parse_config(unset).digest() == plain.digest()
    tiny_scene["render"]["adaptive_threshold"] = 0.01
    adaptive = parse_config(tiny_scene)
    assert adaptive.digest() != plain.digest()
    spec = sample_scene(adaptive, 0)
    assert spec.render.adaptive_threshold == 0.01
    assert SceneSpec.from_dict(spec.to_dict()) == spec
    assert SceneSpec.from_dict(sample_scene(plain, 0).to_dict()).render.adaptive_threshold is None
