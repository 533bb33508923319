"""The gap score (evaluate/gap.py): the MMD² estimator, the coverage ratio, masks, errors, CLI."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from evaluate.cli import main as evaluate_main
from evaluate.gap import CELL_PX, LABEL_PX, GapSettings, PatchSet, coverage, load_patches, mmd2, mmd2_subsets
from synth.config import parse_config
from synth.dataset import Dataset
from synth.errors import ConfigError, DataError
from synth.render import render_dataset
from tests.conftest import TINY_SCENE

SMALL = ["--imgsz", "64", "--coreset-size", "16", "--samples", "50", "--subsets", "3"]


def _gaussian(rng: np.random.Generator, n: int, shift: float = 0.0, dim: int = 8) -> np.ndarray:
    return rng.normal(size=(n, dim)) + shift


def _biased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / d + 1) ** 3

    return float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


def test_mmd2_is_the_unbiased_estimator_term_by_term() -> None:
    rng = np.random.default_rng(1)
    x, y = _gaussian(rng, 5, dim=3), _gaussian(rng, 4, 0.5, dim=3)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(a, b) for a in x for b in y) / 20
    assert mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_mmd2_of_one_gaussian_averages_to_zero_and_can_be_negative() -> None:
    rng = np.random.default_rng(0)
    values = [mmd2(_gaussian(rng, 200), _gaussian(rng, 200)) for _ in range(40)]
    biased = [_biased_mmd2(_gaussian(rng, 200), _gaussian(rng, 200)) for _ in range(40)]
    standard_error = np.std(values) / np.sqrt(len(values))
    assert abs(np.mean(values)) < 3 * standard_error
    assert min(values) < 0  # unbiased: no floor at zero
    assert np.mean(biased) > 5 * abs(np.mean(values))  # the V-statistic is biased upwards


def test_mmd2_is_positive_for_a_shift_and_grows_with_it() -> None:
    rng = np.random.default_rng(2)
    noise = np.std([mmd2(_gaussian(rng, 200), _gaussian(rng, 200)) for _ in range(10)])
    means = [
        np.mean([mmd2(_gaussian(rng, 200), _gaussian(rng, 200, s)) for _ in range(5)]) for s in (0.25, 0.5, 1)
    ]
    assert means[0] > 5 * noise
    assert means[0] < means[1] < means[2]


def test_mmd2_subsets_are_seeded_and_of_fixed_size() -> None:
    rng = np.random.default_rng(3)
    x, y = _gaussian(rng, 3000), _gaussian(rng, 500, 0.5)
    assert mmd2_subsets(x, y, 300, 4, seed=7) == mmd2_subsets(x, y, 300, 4, seed=7)
    assert mmd2_subsets(x, y, 300, 4, seed=7) != mmd2_subsets(x, y, 300, 4, seed=8)
    with pytest.raises(DataError, match="at least 2 patches"):
        mmd2(x[:1], y)


def _patch_set(rng: np.random.Generator, images: int, shift: float = 0.0) -> PatchSet:
    features = (rng.normal(size=(images, 64, 8)) + shift).astype(np.float32)
    paths = [Path(f"image{i}.png") for i in range(images)]
    return PatchSet(paths, features, np.ones((images, 64), dtype=bool), (8, 8))


def test_coverage_ratio_is_one_when_synthetic_and_real_are_alike_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(4)
    real = _patch_set(rng, 40)
    alike = coverage(_patch_set(rng, 20), real, size=64, seed=0)
    assert alike.ratio == pytest.approx(1.0, abs=0.06)
    assert alike.unexplained_share < 0.1  # 0.05 by construction of the threshold, plus noise
    assert alike.real_coreset_images == 20 and len(alike.heldout) == 20
    near = coverage(_patch_set(rng, 20, shift=1.0), real, size=64, seed=0)
    far = coverage(_patch_set(rng, 20, shift=2.0), real, size=64, seed=0)
    assert 1.1 < near.ratio < far.ratio and far.ratio > 1.5
    assert 0.2 < near.unexplained_share < far.unexplained_share


def test_coverage_leaves_masked_patches_out() -> None:
    rng = np.random.default_rng(5)
    real = _patch_set(rng, 20)
    real.usable[:, :32] = False
    real.features[:, :32] += 50.0  # far from anything synthetic, but under a mask
    result = coverage(_patch_set(rng, 10), real, size=64, seed=0)
    assert np.isnan(result.synthetic_distances[:, :32]).all()
    assert result.ratio < 1.3


def test_gap_settings_refuse_impossible_values() -> None:
    with pytest.raises(ConfigError) as error:
        GapSettings(coreset_size=1, rows=0)
    assert str(error.value) == (
        "invalid gap settings: coreset_size: Input should be greater than or equal to 2 (got 1); "
        "rows: Input should be greater than or equal to 1 (got 0)"
    )


def _render(root: Path, seed: int, good_fraction: float = 1.0) -> Path:
    scene = copy.deepcopy(TINY_SCENE)
    scene["seed"] = seed
    scene["splits"]["train"] = {"count": 8, "good_fraction": good_fraction}
    render_dataset(parse_config(scene), root, renderer="raster", progress=False)
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("gap")
    return {
        "synthetic": _render(base / "synthetic", 3),
        "real": _render(base / "real", 11, good_fraction=0.5),
        "no_good": _render(base / "no_good", 12, good_fraction=0.0),
    }


def _gap(*args: str):
    return CliRunner().invoke(evaluate_main, ["gap", *args, *SMALL])


def test_cli_writes_metrics_picture_and_report(datasets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "gap"
    result = _gap(
        "--synthetic", str(datasets["synthetic"]), "--real", str(datasets["real"]), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    good = sum(s.good for s in Dataset(datasets["real"]).samples("train"))
    assert metrics["real"]["images"] == good < 8  # defective train images are not used by default
    assert metrics["real"]["patches"] == good * 64 and metrics["real"]["patches_left_out"] == 0
    assert metrics["synthetic"]["images"] == 8
    assert metrics["real"]["coreset_images"] + metrics["real"]["heldout_images"] == good
    assert metrics["coverage_ratio"] == pytest.approx(
        metrics["median_nn_synthetic"] / metrics["median_nn_real"]
    )
    assert np.isfinite(metrics["mmd2"]) and metrics["settings"]["samples"] == 50
    picture = cv2.imread(str(out / "coverage_map.png"))
    rows = min(4, metrics["real"]["heldout_images"])
    assert picture.shape == (rows * (LABEL_PX + CELL_PX + 4), 4 * CELL_PX + 3 * 4, 3)
    assert "data:image/jpeg;base64," in (out / "report.html").read_text()
    assert f"coverage ratio {metrics['coverage_ratio']:.3f}" in result.output


def test_samples_beyond_the_patches_are_capped_with_a_warning_and_no_spread(datasets, tmp_path) -> None:
    out = tmp_path / "gap"
    synthetic, real = str(datasets["synthetic"]), str(datasets["real"])
    result = CliRunner().invoke(
        evaluate_main,
        ["gap", "--synthetic", synthetic, "--real", real, "--out", str(out), *SMALL, "--samples", "100000"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    patches = {side: metrics[side]["patches"] for side in ("synthetic", "real")}
    assert metrics["samples_used"] == patches and metrics["settings"]["samples"] == 100000
    assert metrics["mmd2_std"] is None and "± –," in result.output
    for side, n in patches.items():
        line = f"--samples 100000 is more than the {n} {side} patches: every MMD² subset takes all {n}"
        assert line in metrics["warnings"] and f"Warning: {line}." in result.output


def test_defective_real_images_serve_with_their_defect_patches_left_out(datasets: dict[str, Path]) -> None:
    from train.patchcore import PatchCoreConfig

    config = PatchCoreConfig(image_size=(64, 64))
    samples = {s.image_path: s for s in Dataset(datasets["real"]).samples("train")}
    patches = load_patches(datasets["real"], config, GapSettings(with_defective=True), "real")
    assert len(patches.paths) == 8
    for path, usable in zip(patches.paths, patches.usable, strict=True):
        sample = samples[path]
        labelled = sample.mask() > 0
        if sample.good:
            assert usable.all()
            continue
        # a patch is an 8 x 8 pixel cell at 64 px: left out exactly when it holds a labelled pixel
        cells = labelled.reshape(8, 8, 8, 8).any(axis=(1, 3)).ravel()
        assert labelled.shape == (64, 64) and cells.any()
        assert np.array_equal(usable, ~cells)


def test_real_data_without_good_images_is_a_clear_error(datasets: dict[str, Path], tmp_path: Path) -> None:
    result = _gap(
        "--synthetic", str(datasets["synthetic"]), "--real", str(datasets["no_good"]), "--out", str(tmp_path)
    )
    assert result.exit_code == 1
    assert f"Error: {datasets['no_good']}: no usable good images in its 'train' split" in result.output
    assert "--with-defective" in result.output
    assert "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _gap("--synthetic", str(datasets["synthetic"]), "--real", str(empty), "--out", str(tmp_path))
    assert result.exit_code == 1 and f"no images found in {empty}" in result.output


def test_an_unreadable_image_is_a_clear_error_naming_the_file(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(datasets["synthetic"], broken)
    bad = broken / "images" / "train" / "000002.png"
    bad.write_bytes(b"not a png")
    result = _gap("--synthetic", str(broken), "--real", str(datasets["real"]), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert f"Error: {bad}: not a readable image" in result.output
    assert not (tmp_path / "out" / "metrics.json").exists()
