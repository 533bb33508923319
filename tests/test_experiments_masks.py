"""Domain-gap experiments on real data in the `masks` format: import options from the
experiment's `real:` section reach the importer (tiles, valid region, class names), and a real
set without good images (leather) runs the synthetic-only PatchCore cell without image AUROC
and refuses PatchCore cells that would need real good images."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from evaluate import experiments
from evaluate.cli import main as evaluate_main
from evaluate.experiments import ExperimentError
from evaluate.experiments.data import ExperimentData, key
from evaluate.experiments.tables import NO_IMAGE_AUROC
from synth.dataset import Dataset

ROOT = Path(__file__).resolve().parents[1]
TILE = 32
BAND = 40  # white columns at the left of the banded strips: the first tile starts at x = 40


def _strips(root: Path) -> Path:
    """AITEX-like strips of 32 x 168 px: six defect-free, six with a dark blob (code 002,
    broken_end) in one tile; the odd strips start with a white band of BAND columns."""
    rng = np.random.default_rng(0)
    for i in range(12):
        good = i < 6
        strip = (100 + 15 * rng.standard_normal((TILE, 168))).clip(0, 255).astype(np.uint8)
        if i % 2:
            strip[:, :BAND] = 255
        name = f"{i:04d}_{'000' if good else '002'}_00"
        folder = root / ("NoDefect_images" if good else "Defect_images")
        folder.mkdir(parents=True, exist_ok=True)
        if not good:
            mask = np.zeros_like(strip)
            cv2.circle(mask, (int(rng.integers(60, 150)), 16), 5, 255, -1)
            strip[mask > 0] = 10
            (root / "Mask_images").mkdir(exist_ok=True)
            cv2.imwrite(str(root / "Mask_images" / f"{name}_mask.png"), mask)
        cv2.imwrite(str(folder / f"{name}.png"), strip)
    return root


def _patches(root: Path) -> Path:
    """Leather-like patches: RGBA images and masks in two parallel folders, class in the name,
    every patch defective (a dark blob), so no good image at all."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(12):
        name = f"{'cut' if i % 2 else 'wringle'}_{i}.png"
        rgb = (120 + 15 * rng.standard_normal((48, 48, 3))).clip(0, 255).astype(np.uint8)
        mask = np.zeros((48, 48), np.uint8)
        cv2.circle(mask, (int(rng.integers(10, 38)), int(rng.integers(10, 38))), 6, 255, -1)
        rgb[mask > 0] = 20
        cv2.imwrite(str(root / "images" / name), np.dstack([rgb, np.full((48, 48), 255, np.uint8)]))
        cv2.imwrite(str(root / "masks" / name), mask)
    return root


def _doc(real: dict, scenarios: list[dict], **fields) -> dict:
    return {
        "name": "tiny_masks",
        "real": {"format": "masks", "src": "real", "split": [0.5, 0.25, 0.25], **real},
        "synthetic": {
            "scene": str(ROOT / "scenes" / "metal_tile.yaml"),
            "n": 8,
            "renderer": "raster",
            "overrides": {"camera": {"resolution": [64, 64]}, "impurities": []},
        },
        "patchcore": {
            "coreset_size": 64,
            "image_size": [64, 64],
            "epochs": 1,
            "augmentations": 0,
            "holdout": 0.0,
        },
        "scenarios": scenarios,
        **fields,
    }


STRIPS = {
    "class_pattern": r"^\d+_(\d+)_",
    "class_map": ["aitex"],
    "cutting": {"tile": TILE, "valid_region": "saturated-columns"},
}
BOTH = [{"name": "real_only", "train": "real"}, {"name": "synthetic_only", "train": "synthetic"}]


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_import_options_of_the_experiment_reach_the_importer(tmp_path):
    _strips(tmp_path / "real")
    config = experiments.load_experiment(_write(tmp_path, _doc(STRIPS, BOTH, budgets=[3])))
    data = ExperimentData(config, tmp_path / "out")
    data.import_real()
    dataset = Dataset(data.real_root)
    assert [c.name for c in dataset.classes] == ["broken_end"]  # code 002, by the AITEX table
    ids = {s.id for split in ("train", "val", "test") for s in dataset.samples(split)}
    # The plain strips give 5 tiles from x = 0; the banded ones lose the band: 4 tiles from x = 40.
    plain = [
        f"{i:04d}_{'000' if i < 6 else '002'}_00_x{x:04d}"
        for i in range(0, 12, 2)
        for x in (0, 27, 54, 82, 109, 136)
    ]
    banded = [
        f"{i:04d}_{'000' if i < 6 else '002'}_00_x{x:04d}"
        for i in range(1, 12, 2)
        for x in (40, 72, 104, 136)
    ]
    assert ids == set(plain + banded)
    for sample in dataset.samples("train"):
        assert cv2.imread(str(sample.image_path), cv2.IMREAD_UNCHANGED).shape[:2] == (TILE, TILE)
    report = json.loads((data.real_root / "import_report.json").read_text())
    assert report["cutting"] == {
        **config.real.cutting.__dict__,
        "tile": TILE,
        "valid_region": "saturated-columns",
    }
    assert len(data.real_good_train("all")) == sum(1 for s in dataset.samples("train") if s.good)

    recipe = data.real_recipe()
    assert recipe["cutting"]["tile"] == TILE and recipe["class_map"] == ["aitex"]
    other = experiments.load_experiment(_write(tmp_path, _doc({**STRIPS, "cutting": {"tile": 64}}, BOTH)))
    assert ExperimentData(other, tmp_path / "out").real_root != data.real_root  # another import


def test_an_experiment_without_the_new_options_keeps_its_real_data_key(tmp_path):
    config = experiments.load_experiment(ROOT / "experiments" / "metal_tile.yaml")
    recipe = ExperimentData(config, tmp_path).real_recipe()
    # The fields the recipe had before the masks options existed, and nothing else.
    assert recipe == {
        "format": "folders",
        "src": config.real.src,
        "seed": 0,
        "split": (0.6, 0.15, 0.25),
        "group_pattern": r"exp\d+",
        "impurities": [],
    }
    assert ExperimentData(config, tmp_path).real_root.name == f"real-{key(recipe)}"


@pytest.mark.timeout(300)
def test_tiny_experiment_on_tiles_of_strips(tmp_path):
    _strips(tmp_path / "real")
    out = tmp_path / "out"
    path = _write(tmp_path, _doc(STRIPS, BOTH, budgets=[3]))
    result = CliRunner().invoke(evaluate_main, ["domain-gap", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "table.json").read_text())
    assert table["header"][6:] == ["broken_end", "image AUROC", "pixel AUROC", "AUPRO"]
    assert [r[:2] for r in table["rows"]] == [["real_only", 3], ["synthetic_only", 0]]
    for row in table["rows"]:
        assert 0 <= row[table["header"].index("image AUROC")] <= 1  # good and defective test tiles
    assert NO_IMAGE_AUROC not in (out / "table.md").read_text()


@pytest.mark.timeout(300)
def test_real_set_without_good_images_runs_synthetic_patchcore_without_image_auroc(tmp_path):
    _patches(tmp_path / "real")
    out = tmp_path / "out"
    real = {"class_map": ["wringle=wrinkle"]}
    path = _write(tmp_path, _doc(real, BOTH, patchcore_cells=["synthetic_only"]))
    result = CliRunner().invoke(evaluate_main, ["domain-gap", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "table.json").read_text())
    assert table["header"] == [
        "scenario",
        "real good imgs",
        "P_px",
        "R_px",
        "F1_px",
        "mean DW recall",
        "cut",
        "wrinkle",
        "pixel AUROC",
        "AUPRO",
    ]
    ((scenario, good, *values),) = table["rows"]
    assert (scenario, good) == ("synthetic_only", 0)
    assert all(0 <= v <= 1 for v in values)
    (cell,) = (out / "cells").glob("synthetic_only-*.json")
    assert json.loads(cell.read_text())["image"]["good_images"] == 0
    assert json.loads(cell.read_text())["image"]["auroc"] is None  # undefined: null in JSON
    assert (out / "table.md").read_text().endswith(NO_IMAGE_AUROC + ".\n")
    assert NO_IMAGE_AUROC in (out / "report.html").read_text()

    # A real PatchCore scenario on the same data is refused after the import, before any coreset.
    refused_out = tmp_path / "refused"
    path = _write(tmp_path, _doc(real, BOTH, budgets=[2]))
    renders = sorted((tmp_path / "renders").rglob("*"))  # the first run's, shared beside its output
    result = CliRunner().invoke(evaluate_main, ["domain-gap", str(path), "--out", str(refused_out)])
    assert result.exit_code == 1
    assert "scenarios ['real_only'] train PatchCore on real good images" in result.output
    assert "no good train image (every image is defective)" in result.output
    assert "Traceback" not in result.output
    assert not (refused_out / "coresets").exists() and sorted((tmp_path / "renders").rglob("*")) == renders


def test_bad_masks_options_and_patchcore_cells_fail_at_load(tmp_path):
    cases = [
        (
            {**STRIPS, "cutting": {"tile": 0}},
            {},
            ["real.cutting", "--tile 0: expected a tile size of at least 1 px"],
        ),
        ({**STRIPS, "cutting": {"tiles": 32}}, {}, ["real.cutting.tiles"]),
        ({"format": "masked"}, {}, ["real.format"]),
        (
            STRIPS,
            {"patchcore_cells": ["real_onyl"]},
            ["patchcore_cells ['real_onyl'] are not among the scenarios"],
        ),
    ]
    for real, fields, messages in cases:
        path = _write(tmp_path, _doc(real, BOTH, **fields))
        result = CliRunner().invoke(evaluate_main, ["domain-gap", str(path), "--out", str(tmp_path / "out")])
        assert result.exit_code == 1, result.output
        assert all(m in result.output for m in messages) and "Traceback" not in result.output, result.output
        assert not (tmp_path / "out").exists()
    with pytest.raises(ExperimentError, match="patchcore_cells"):
        experiments.load_experiment(_write(tmp_path, _doc(STRIPS, BOTH, patchcore_cells=["nope"])))
