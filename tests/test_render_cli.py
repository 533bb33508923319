"""`synth render --workers`, `synth preview` and CLI error handling (raster view: no bpy)."""

from __future__ import annotations

import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import pytest
import yaml
from click.testing import CliRunner

from synth.cli import main as synth_cli
from synth.config import parse_config
from synth.dataset import Dataset, verify
from synth.render import render_dataset
from synth.writers import DatasetWriter

SYNTH = [sys.executable, "-m", "synth.cli"]


def write_scene(tiny_scene: dict, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scene))
    return path


def test_workers_render_the_same_dataset_as_one_process(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    runner = CliRunner()
    one = runner.invoke(
        synth_cli, ["render", str(scene), "--out", str(tmp_path / "one"), "--renderer", "raster", "--quiet"]
    )
    assert one.exit_code == 0, one.output
    two = runner.invoke(
        synth_cli,
        ["render", str(scene), "--out", str(tmp_path / "two"), "--renderer", "raster", "--workers", "2"],
    )
    assert two.exit_code == 0, two.output
    assert verify(tmp_path / "two") == []
    for split in ("train", "val", "test"):
        for a, b in zip(
            Dataset(tmp_path / "one").samples(split), Dataset(tmp_path / "two").samples(split), strict=True
        ):
            assert a.id == b.id and a.image_path.read_bytes() == b.image_path.read_bytes()
            assert a.instances_path.read_bytes() == b.instances_path.read_bytes()


def test_n_scales_the_splits(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    result = CliRunner().invoke(
        synth_cli, ["render", str(scene), "--out", str(tmp_path / "d"), "--renderer", "raster", "--n", "5"]
    )
    assert result.exit_code == 0, result.output
    assert Dataset(tmp_path / "d").splits == {"train": 2, "val": 1, "test": 2}


def test_preview_sheet_has_image_and_overlay_per_sample(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(
        synth_cli, ["preview", str(scene), "--n", "4", "--renderer", "raster", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    sheet = cv2.imread(str(out))
    assert sheet.shape == (2 * (64 + 14), 4 * 64, 3)  # 4 samples x (image, overlay), 4 columns
    image, overlay = sheet[14:78, 0:64], sheet[14:78, 64:128]
    assert (image != overlay).any()  # the first sample is defective: its overlay is tinted


def test_bad_arguments_are_one_line_errors(tiny_scene: dict, tmp_path: Path) -> None:
    scene = write_scene(tiny_scene, tmp_path)
    runner = CliRunner()
    result = runner.invoke(synth_cli, ["render", str(scene), "--out", str(tmp_path / "x"), "--shard", "3/2"])
    assert result.exit_code == 2 and "expected i/N with 0 <= i < N, got '3/2'" in result.output
    result = runner.invoke(
        synth_cli, ["render", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1 and "cannot read scene config" in result.output
    result = runner.invoke(synth_cli, ["render", str(scene), "--out", str(tmp_path / "x"), "--n", "0"])
    assert result.exit_code == 1
    assert result.output == "Error: --n must be at least 1 and at most 10000000 (the config's cap), got 0\n"


def test_n_above_the_config_cap_is_refused_before_any_work(tiny_scene: dict, tmp_path: Path) -> None:
    scene, out = write_scene(tiny_scene, tmp_path), tmp_path / "d"

    def two_gib() -> None:  # before the fix, the index lists ran out of this at once
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    command = [*SYNTH, "render", str(scene), "--out", str(out), "--renderer", "raster", "--n", "1000000000"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, preexec_fn=two_gib)
    assert result.returncode == 1
    assert (
        result.stderr
        == "Error: --n must be at least 1 and at most 10000000 (the config's cap), got 1000000000\n"
    )
    assert not out.exists()


def test_render_builds_nothing_proportional_to_n(tiny_scene: dict, tmp_path: Path, monkeypatch) -> None:
    tiny_scene["splits"] = {"train": {"count": 2_000_000}}
    original, calls = DatasetWriter.write, []

    def stop_after_two(self, *args, **kwargs):
        calls.append(args[1])
        if len(calls) > 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DatasetWriter, "write", stop_after_two)
    tracemalloc.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            render_dataset(parse_config(tiny_scene), tmp_path, renderer="raster", progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert calls == ["000000", "000001", "000002"]
    assert peak < 20e6  # a list of the 2 million indices alone would take ~70 MB
