"""The raster view and what renderers share: no bpy needed, and nothing it cannot show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from synth.cli import main as synth_cli
from synth.config import load_config, parse_config
from synth.raster import unrealisable
from synth.rendering import to_srgb8

SCENES = Path(__file__).resolve().parents[1] / "scenes"


def test_raster_view_and_render_loop_import_without_bpy() -> None:
    code = (
        "import sys; import synth.raster, synth.rendering, synth.rig, synth.render, synth.cli; "
        "sys.exit('bpy' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_srgb_encoding_clips_and_follows_the_srgb_curve() -> None:
    linear = np.array([-0.5, 0.0, 0.001, 0.0031308, 0.18, 0.5, 1.0, 3.0], np.float32)
    # 0.001 is on the linear segment (12.92·x), the rest on 1.055·x^(1/2.4) − 0.055
    np.testing.assert_array_equal(to_srgb8(linear), [0, 0, 3, 10, 118, 188, 255, 255])


BENT = {"geometry": {"shape": "curved_tile", "size_mm": [20, 20], "bend_deg": [0, 40]}}
ASKS = {
    "bend": (BENT, "geometry.bend_deg [0, 40]"),
    "tilt": ({"randomization": {"camera_tilt_deg": [2, 8]}}, "randomization.camera_tilt_deg [2, 8]"),
    "roll": ({"randomization": {"camera_roll_deg": [0, 180]}}, "randomization.camera_roll_deg [0, 180]"),
}


def test_unrealisable_names_each_field_asked_for(tiny_scene: dict) -> None:
    for change, field in ASKS.values():
        assert unrealisable(parse_config({**tiny_scene, **change})) == [field]
    assert unrealisable(parse_config(tiny_scene)) == []
    # what is not asked for is no reason: zero ranges, and a bend on a flat plate (ignored by Cycles too)
    zero = {"randomization": {"camera_tilt_deg": [0, 0], "camera_roll_deg": [0, 0]}}
    flat_bend = {"geometry": {"shape": "flat", "size_mm": [20, 20], "bend_deg": [10, 20]}}
    assert unrealisable(parse_config({**tiny_scene, **zero, **flat_bend})) == []


def test_shipped_scenes_the_raster_view_refuses() -> None:
    refused = {p.stem: unrealisable(load_config(p)) for p in sorted(SCENES.glob("*.yaml"))}
    assert refused == {
        "commutator": [],
        "commutator_photo": [],
        "leather": [],
        "leather_patch": [],
        "metal": [],
        "metal_tile": ["geometry.bend_deg [35, 60]"],
        "metal_tile_fit": ["geometry.bend_deg [35, 60]"],
        "metal_tile_fit_mmd2": ["geometry.bend_deg [35, 60]"],
        "metal_tile_ground": ["geometry.bend_deg [35, 60]"],
        "textile": [],
        "textile_aitex": [],
    }


@pytest.mark.parametrize("command", ["render", "preview"])
def test_raster_refuses_what_it_cannot_show_before_any_work(
    tiny_scene: dict, tmp_path: Path, command: str
) -> None:
    scene = tmp_path / "asks.yaml"
    scene.write_text(yaml.safe_dump({**tiny_scene, **ASKS["bend"][0], **ASKS["tilt"][0]}))
    out = tmp_path / ("data" if command == "render" else "sheet.png")
    result = CliRunner().invoke(synth_cli, [command, str(scene), "--out", str(out), "--renderer", "raster"])
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(f"Error: {scene}: ")
    assert "geometry.bend_deg [0, 40], randomization.camera_tilt_deg [2, 8]" in line
    assert "--renderer cycles" in line
    assert not out.exists()
