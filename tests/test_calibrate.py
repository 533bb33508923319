"""`synth calibrate` (synth/calibrate.py): search space, recovery of a known value, resume after a
kill, the calibrated YAML, and clear errors for bad input."""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner

from synth.calibrate import (
    STUDY_NAME,
    CalibrationSettings,
    calibrate,
    completed,
    render_good,
    search_space,
    trial_config,
    with_ranges,
)
from synth.cli import main as synth_main
from synth.config import load_config, parse_config
from synth.errors import ConfigError
from synth.writers import atomic_write_png
from tests.conftest import REPO, TINY_SCENE

TARGET_EXPOSURE = 1.0
TOLERANCE_EV = 0.3  # the toy calibration must land within this of the target exposure
FAST = {"images": 6, "resolution": 64, "samples": 200, "subsets": 3, "fit_width": False}


def _write_scene(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _toy(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny raster scene at exposure 0 EV and 'real' images: the same scene rendered at 1 EV."""
    start = copy.deepcopy(TINY_SCENE)
    start["impurities"] = []
    scene = _write_scene(tmp_path / "tiny.yaml", start)
    target = with_ranges(start, {"render.exposure": (TARGET_EXPOSURE, TARGET_EXPOSURE)})
    real = tmp_path / "real"
    real.mkdir()
    for i, image in enumerate(
        render_good(trial_config(target, CalibrationSettings(**FAST), "target"), "raster")
    ):
        atomic_write_png(real / f"good_{i}.png", image)
    return scene, real


def _cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(synth_main, args)
    return result.exit_code, result.output


def test_default_search_space_is_the_ranges_the_scene_spells_out_that_the_renderer_draws() -> None:
    scene = REPO / "scenes" / "metal_tile.yaml"
    data = yaml.safe_load(scene.read_text())
    config = load_config(scene)
    space = search_space(scene, data, config, None, "raster")
    assert [p.path for p in space] == [
        "surface.color_variation",
        "surface.scale_mm",
        "surface.roughness",
        "surface.bump_strength",
        "camera.height_mm",
        "lights.0.elevation_deg",
        "lights.0.azimuth_deg",
        "lights.0.power_w",
        "render.exposure",
    ]
    # metallic, bend, light size and temperature are not drawn by the raster view: Cycles fits them
    cycles = [p.path for p in search_space(scene, data, config, None, "cycles")]
    assert {"surface.metallic", "geometry.bend_deg", "lights.0.size_mm", "lights.0.temperature_k"} <= set(
        cycles
    )
    roughness = space[2]
    assert roughness.shipped == (0.45, 0.65)
    assert (roughness.low, roughness.high) == pytest.approx((0.275, 0.825))  # centre ± half of itself
    assert roughness.max_width == pytest.approx(0.4)


def test_params_name_ranges_of_absent_sections_and_the_result_validates() -> None:
    scene = REPO / "scenes" / "metal_tile.yaml"
    data = yaml.safe_load(scene.read_text())
    space = search_space(scene, data, load_config(scene), ["sensor.blur_px", "render.exposure=0:2"], "raster")
    blur, exposure = space
    assert blur.shipped == (0.0, 0.0) and (blur.low, blur.high) == pytest.approx(
        (0.0, 1.0)
    )  # 10 % of [0, 10]
    assert (exposure.low, exposure.high) == (0.0, 2.0)
    fitted = with_ranges(data, {"sensor.blur_px": blur.clip(0.6, 0.4), "render.exposure": (1.0, 1.2)})
    config = parse_config(fitted)
    assert config.sensor is not None and config.sensor.blur_px == (0.4, 0.8)
    assert config.render.exposure == (1.0, 1.2)
    assert "sensor" not in data  # the scene document itself is left alone


def test_toy_calibration_recovers_the_exposure_of_the_target_renders(tmp_path: Path) -> None:
    scene, real = _toy(tmp_path)
    out = tmp_path / "tiny_fit.yaml"
    settings = CalibrationSettings(trials=8, **FAST)
    result = calibrate(
        scene, real, out, tmp_path / "report", None, ["render.exposure=-1:2"], settings, progress=False
    )
    fitted = load_config(out)  # validates
    lo, hi = fitted.render.exposure
    assert lo == hi  # fixed widths keep the shipped width (0)
    assert abs(lo - TARGET_EXPOSURE) <= TOLERANCE_EV, f"calibrated exposure {lo} EV, target {TARGET_EXPOSURE}"
    assert result.best_value < result.shipped_value
    assert fitted.name == "tiny_fit"
    header = out.read_text().splitlines()[:5]
    assert header[0].startswith("# Calibrated by `synth calibrate`") and "render.exposure" in header[4]
    for name in ("report.html", "history.png", "contact_sheet.png", "study.db"):
        assert (tmp_path / "report" / name).is_file(), name


def _finished_trials(db: Path) -> int:
    """Completed trials in a study database, read-only: opening it through Optuna would create
    its tables and race the run that is creating them."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # no file or no table yet
        return 0


def test_a_killed_calibration_resumes_from_its_storage(tmp_path: Path) -> None:
    scene, real = _toy(tmp_path)
    report = tmp_path / "report"
    args = [
        "-m", "synth.cli", "calibrate", str(scene), "--real", str(real), "--out", str(tmp_path / "fit.yaml"),
        "--report", str(report), "--params", "render.exposure=-1:2", "--trials", "6", "--images", "6",
        "--resolution", "64", "--fixed-widths", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stderr=stderr)
    storage = f"sqlite:///{report / 'study.db'}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and _finished_trials(report / "study.db") < 2:
        time.sleep(0.5)
    ended = proc.poll()  # None: still running when killed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = completed(optuna.load_study(study_name=STUDY_NAME, storage=storage))
    assert 2 <= len(before) < 6, (
        f"the run was not caught mid-study (exit status before the kill: {ended}; "
        f"its stderr ends: {log.read_text()[-1500:]!r})"
    )
    settings = CalibrationSettings(trials=6, images=6, resolution=64, fit_width=False)  # as the CLI's
    result = calibrate(
        scene, real, tmp_path / "fit.yaml", report, None, ["render.exposure=-1:2"], settings, progress=False
    )
    after = completed(optuna.load_study(study_name=STUDY_NAME, storage=storage))
    assert result.trials == len(after) == 6
    kept = {t.number: (t.params, t.value) for t in after}
    for trial in before:  # nothing done before the kill is redone or lost
        assert kept[trial.number] == (trial.params, trial.value)


def test_a_storage_made_for_another_scene_is_refused(tmp_path: Path) -> None:
    scene, real = _toy(tmp_path)
    settings = CalibrationSettings(trials=1, **FAST)
    calibrate(
        scene,
        real,
        tmp_path / "a.yaml",
        tmp_path / "report",
        None,
        ["render.exposure"],
        settings,
        progress=False,
    )
    other = copy.deepcopy(TINY_SCENE)
    other["seed"] = 9
    other_scene = _write_scene(tmp_path / "other.yaml", other)
    with pytest.raises(
        ConfigError, match=r"study was made for another calibration \(differs in: .*scene_digest"
    ):
        calibrate(
            other_scene, real, tmp_path / "b.yaml", tmp_path / "report", None, ["render.exposure"], settings
        )


def test_bad_inputs_are_one_line_errors_naming_what_is_wrong(tmp_path: Path) -> None:
    scene, real = _toy(tmp_path)
    base = ["calibrate", str(scene), "--out", str(tmp_path / "fit.yaml"), "--report", str(tmp_path / "r")]
    base += ["--trials", "1", "--images", "2", "--resolution", "64"]

    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = _cli([*base, "--real", str(empty)])
    assert code == 1 and f"{empty}" in output and "no images" in output.lower(), output

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    code, output = _cli([*base, "--real", str(broken)])
    assert code == 1 and f"{broken / 'a.png'}: not a readable image" in output, output

    code, output = _cli([*base, "--real", str(real), "--params", "surface.shininess"])
    assert code == 1 and "'surface.shininess' is not a [min, max] range of the scene" in output, output

    code, output = _cli([*base, "--real", str(real), "--params", "surface.metallic"])
    assert code == 1 and "surface.metallic has no effect in the raster renderer" in output, output

    code, output = _cli([*base, "--real", str(real), "--params", "render.exposure=2:1"])
    assert code == 1 and "LOW must not exceed HIGH" in output, output

    fixed = copy.deepcopy(TINY_SCENE)
    fixed["surface"]["scale_mm"] = [0.5, 0.5]
    fixed["lights"][0]["elevation_deg"] = [55, 55]
    fixed_scene = _write_scene(tmp_path / "fixed.yaml", fixed)
    code, output = _cli(["calibrate", str(fixed_scene), *base[2:], "--real", str(real)])
    assert code == 1 and f"{fixed_scene}: no numeric ranges to fit" in output, output

    assert not (tmp_path / "fit.yaml").exists()  # nothing half-written


def test_settings_refuse_impossible_values() -> None:
    with pytest.raises(ConfigError, match=r"^invalid calibration settings: images: .* equal to 2 \(got 1\)$"):
        CalibrationSettings(images=1)
    with pytest.raises(ConfigError, match=r"resolution: .* equal to 32 \(got 16\)"):
        CalibrationSettings(resolution=16)
