"""A tiny domain-gap experiment end to end: tiny renders, two scenarios, a handful of images."""

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from evaluate import experiments
from evaluate.cli import main as evaluate_main
from evaluate.experiments import patchcore_cells, yolo_cells
from evaluate.experiments.config import restrict
from evaluate.experiments.data import ExperimentData, key

ROOT = Path(__file__).resolve().parents[1]


def _fake_real(root: Path, n_good: int = 10, n_bad: int = 8) -> Path:
    """Class folders like magnetic_tile: grey textured tiles, dark blobs as 'pit' defects."""
    rng = np.random.default_rng(0)
    for i in range(n_good + n_bad):
        image = (100 + 20 * rng.standard_normal((48, 56))).clip(0, 255).astype(np.uint8)
        folder = root / ("MT_Free" if i < n_good else "MT_Pit") / "Imgs"
        folder.mkdir(parents=True, exist_ok=True)
        if i >= n_good:
            mask = np.zeros_like(image)
            cv2.circle(mask, (int(rng.integers(10, 46)), int(rng.integers(10, 38))), 5, 255, -1)
            image[mask > 0] = 10
            cv2.imwrite(str(folder / f"exp{i % 2}_num_{i}.png"), mask)
        cv2.imwrite(str(folder / f"exp{i % 2}_num_{i}.jpg"), image)
    return root


def _experiment(tmp_path: Path) -> Path:
    scene = yaml.safe_load((ROOT / "scenes" / "metal_tile.yaml").read_text())
    stains_everywhere = [{**scene["impurities"][0], "probability": 1.0}]
    doc = {
        "name": "tiny",
        "real": {"format": "folders", "src": "real", "split": [0.5, 0.25, 0.25], "group_pattern": r"exp\d+"},
        "synthetic": {
            "scene": str(ROOT / "scenes" / "metal_tile.yaml"),
            "n": 8,
            "renderer": "raster",
            "overrides": {"camera": {"resolution": [64, 64]}, "impurities": stains_everywhere},
        },
        "patchcore": {
            "coreset_size": 64,
            "image_size": [64, 64],
            "epochs": 1,
            "augmentations": 0,
            "holdout": 0.0,
        },
        "budgets": [3],
        "scenarios": [
            {"name": "real_only", "train": "real"},
            {"name": "synthetic_only", "train": "synthetic", "overrides": {"impurities": []}},
            {"name": "synthetic_finetuned", "train": "finetune"},
            {"name": "melded", "train": "meld"},
        ],
        "synthetic_test": True,
        "yolo": {
            "model": "yolo11n.yaml",
            "train": {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "plots": False, "val": False},
            "overrides": {"splits": {"train": {"good_fraction": 0.5}}},
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.timeout(300)
def test_tiny_domain_gap_end_to_end(tmp_path, monkeypatch):
    _fake_real(tmp_path / "real")
    out = tmp_path / "out"
    result = CliRunner().invoke(evaluate_main, ["domain-gap", str(_experiment(tmp_path)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "table.json").read_text())
    header, rows = table["header"], table["rows"]
    assert header[:6] == ["scenario", "real good imgs", "P_px", "R_px", "F1_px", "mean DW recall"]
    assert header[6] == "pit" and header[-3:] == ["image AUROC", "pixel AUROC", "AUPRO"]
    cells = [["real_only", 3], ["synthetic_only", 0], ["synthetic_finetuned", 3], ["melded", 3]]
    assert [r[:2] for r in rows] == cells
    for row in rows:
        assert len(row) == len(header)
        assert all(v is None or 0 <= v <= 1 for v in row[2:])  # None: undefined (null in JSON)
    assert (out / "table.md").read_text().count("\n") == 6
    assert (out / "table.csv").read_text().splitlines()[0].startswith("scenario,real good imgs,P_px")

    # The same cells on the synthetic test split, whose impurities get a lower-is-better column.
    synthetic = json.loads((out / "synthetic_test_table.json").read_text())
    stain_column = synthetic["header"].index("water_stain (impurity, lower better)")
    assert {"blowhole", "crack", "break", "fray", "uneven"} <= set(synthetic["header"])
    assert [r[:2] for r in synthetic["rows"]] == cells
    for row in synthetic["rows"]:
        assert len(row) == len(synthetic["header"])
        assert all(v is None or 0 <= v <= 1 for v in row[2:])  # None: undefined (null in JSON)
        assert 0 <= row[stain_column] <= 1  # every synthetic image has stains: never NaN
    (real_only,) = (out / "synthetic_test").glob("real_only__real3-*.json")
    assert json.loads(real_only.read_text())["data"].startswith(str(out.parent / "renders" / "metal_tile-"))

    yolo = json.loads((out / "yolo_table.json").read_text())
    assert yolo["header"] == [
        "scenario",
        "real defect imgs",
        "mAP50",
        "mAP50-95",
        "recall",
        "recall pit",
        "false alarms on good",
    ]
    assert [r[:2] for r in yolo["rows"]] == cells
    for row in yolo["rows"]:
        assert len(row) == len(yolo["header"]) and all(0 <= v <= 1 for v in row[2:])
    assert (out / "yolo_table.md").read_text().count("\n") == 6
    html = (out / "report.html").read_text()
    assert html.count("data:image/jpeg;base64,") >= 4 and "synthetic_only" in html
    assert "YOLO (one class: defect)" in html and "YOLO melded__real3" in html
    assert "Synthetic test split (impurities)" in html and "synthetic test: melded__real3" in html

    # Resumable: a second run recomputes no cell, trains nothing and predicts nothing.
    def fail(*args, **kwargs):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(patchcore_cells.anomaly, "evaluate_predictor", fail)
    monkeypatch.setattr(yolo_cells.detector, "predict", fail)
    for name in ("pretrain", "finetune", "meld"):
        monkeypatch.setattr(f"train.yolo.training.{name}", fail)
    again = CliRunner().invoke(evaluate_main, ["domain-gap", str(_experiment(tmp_path)), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "table.json").read_text())["rows"] == rows
    assert json.loads((out / "synthetic_test_table.json").read_text())["rows"] == synthetic["rows"]
    assert json.loads((out / "yolo_table.json").read_text())["rows"] == yolo["rows"]

    # Part of the matrix (--scenario, --budget, --kind) finds its cells under the same keys.
    part = ["--scenario", "real_only", "--scenario", "synthetic_only", "--budget", "3", "--kind", "yolo"]
    fourth = CliRunner().invoke(
        evaluate_main, ["domain-gap", str(_experiment(tmp_path)), "--out", str(out), *part]
    )
    assert fourth.exit_code == 0, fourth.output
    # Its tables still hold every cached cell of the file, not only those of this run.
    assert json.loads((out / "yolo_table.json").read_text())["rows"] == yolo["rows"]
    assert json.loads((out / "table.json").read_text())["rows"] == rows
    assert "0 PatchCore, 2 YOLO, 0 Mask R-CNN and 0 segment cells" in fourth.output

    # An edit recomputes exactly what it touches: a new coverage k re-evaluates every PatchCore
    # cell (real and synthetic test) from the cached coresets and leaves the YOLO cells alone.
    evaluated = []
    monkeypatch.setattr(
        patchcore_cells.anomaly, "evaluate_predictor", lambda *a, **_: evaluated.append(a[-1]) or {}
    )
    for name in ("pretrain", "finetune"):
        monkeypatch.setattr(f"train.patchcore.{name}", fail)
    doc = yaml.safe_load(_experiment(tmp_path).read_text())
    doc["coverage_k"] = 50
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr("evaluate.experiments.runner.write_outputs", lambda *a, **k: out / "report.html")
    third = CliRunner().invoke(evaluate_main, ["domain-gap", str(edited), "--out", str(out)])
    assert third.exit_code == 0, third.output
    assert evaluated == [50] * 8

    # Another PatchCore seed is another set of cells: the first coreset is trained with it.
    seeds = []

    def record_seed(data, config, *args, **kwargs):
        seeds.append(config.seed)
        raise AssertionError("stop after the first training")

    monkeypatch.setattr("train.patchcore.pretrain", record_seed)
    args = [str(_experiment(tmp_path)), "--out", str(out), "--patchcore-seed", "5"]
    CliRunner().invoke(evaluate_main, ["domain-gap", *args])
    assert seeds == [5]

    # --patchcore-seed 0 is the file's own seed 0: the same cells, all found in the cache.
    args = [str(_experiment(tmp_path)), "--out", str(out), "--patchcore-seed", "0"]
    same = CliRunner().invoke(evaluate_main, ["domain-gap", *args])
    assert same.exit_code == 0, same.output
    assert seeds == [5] and evaluated == [50] * 8


def test_every_coreset_and_cell_key_covers_the_patchcore_settings(tmp_path):
    _fake_real(tmp_path / "real")
    path = _experiment(tmp_path)
    config = experiments.load_experiment(path)
    data = ExperimentData(config, tmp_path / "out")
    data.import_real()
    cells = patchcore_cells.PatchCoreCells(data)

    def keys(cells):
        return {
            (s.name, b): (key(cells.coreset_recipe(s, b)), key(cells.cell_recipe(s, b, False)))
            for s, b in cells.config.cells()
        }

    before = keys(cells)
    config.patchcore["coreset_size"] = 32  # the fine-tuned coreset's key once left this out
    resized = keys(cells)
    assert all(resized[c][0] != before[c][0] and resized[c][1] != before[c][1] for c in before)
    config.patchcore["coreset_size"] = 64
    config.scenarios[2].patchcore["seed"] = 3  # a scenario's own field: only its cells change
    changed = {c for c in before if keys(cells)[c] != before[c]}
    assert changed == {("synthetic_finetuned", 3)}

    reseeded = experiments.load_experiment(path, patchcore_seed=0)
    assert keys(patchcore_cells.PatchCoreCells(ExperimentData(reseeded, tmp_path / "out"))) == before


def test_experiments_beside_each_other_share_their_renders(tmp_path):
    """Two experiment files asking for the same scene, overrides, n and renderer: the second
    finds the first's renders and writes nothing; an output folder rendered into before renders
    were shared keeps using its own."""
    path = _experiment(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "name": "other", "budgets": [2]}))
    runs = tmp_path / "runs"
    first = ExperimentData(experiments.load_experiment(path), runs / "tiny").synthetic_root(None)
    assert first.parent == runs / "renders" and len(list(first.glob("images/*/*.png"))) == 8

    def files() -> dict:  # samples are not written again, and no file changes
        images = {(p, "mtime"): p.stat().st_mtime_ns for p in first.glob("images/*/*.png")}
        return {**images, **{p: p.read_bytes() for p in first.rglob("*") if p.is_file()}}

    written = files()
    second = ExperimentData(experiments.load_experiment(other), runs / "other").synthetic_root(None)
    assert second == first and files() == written

    earlier = runs / "older" / "synthetic" / first.name
    earlier.parent.mkdir(parents=True)
    first.rename(earlier)
    assert ExperimentData(experiments.load_experiment(path), runs / "older").synthetic_root(None) == earlier
    assert not first.exists()


def test_bad_sections_fail_at_load_before_any_work(tmp_path):
    doc = yaml.safe_load(_experiment(tmp_path).read_text())
    cases = [
        (
            ("patchcore", "coreset_size"),
            0,
            "scenario real_only: patchcore settings: invalid PatchCore settings: coreset_size: "
            "Input should be greater than or equal to 2 (got 0)",
        ),
        (("patchcore", "image_size"), "huge", "scenario real_only: patchcore settings"),
        (("synthetic", "overrides"), {"camera": {"resolution": [0, 0]}}, "synthetic.overrides:"),
        (("yolo", "train"), {"epoch": 1}, "yolo.train:"),
        (("budgets",), [-5], "budgets.0"),
        (("budgets",), [0], "budgets.0"),
    ]
    for (section, *field), value, message in cases:
        bad = yaml.safe_load(yaml.safe_dump(doc))
        target = bad[section] if field else bad
        target[field[0] if field else section] = value
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(bad))
        result = CliRunner().invoke(evaluate_main, ["domain-gap", str(path), "--out", str(tmp_path / "out")])
        assert result.exit_code == 1, (value, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output
        assert not (tmp_path / "out").exists()  # nothing imported, rendered or trained


def test_experiment_errors_name_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nreal: {src: r}\nscenarios: [{name: a, train: sideways}]\n")
    result = CliRunner().invoke(evaluate_main, ["domain-gap", str(path)])
    assert result.exit_code == 1
    assert "scenarios.0.train" in result.output
    path.write_text("name: x\nreal: {src: r}\nscenarios: [{name: a, train: synthetic}]\n")
    result = CliRunner().invoke(evaluate_main, ["domain-gap", str(path)])
    assert "scenarios ['a'] need a `synthetic:` section" in result.output
    path.write_text("name: x\nreal: {src: r}\nscenarios: [{name: a, train: real}]\nyolo: {scenarios: [b]}\n")
    result = CliRunner().invoke(evaluate_main, ["domain-gap", str(path)])
    assert "yolo.scenarios ['b'] are not among the scenarios ['a']" in result.output


def test_shipped_metal_tile_experiment_is_valid():
    config = experiments.load_experiment(ROOT / "experiments" / "metal_tile.yaml")
    assert Path(config.synthetic.scene) == ROOT / "scenes" / "metal_tile.yaml"
    assert {s.train for s in config.scenarios} == {"real", "synthetic", "finetune", "meld"}
    assert config.yolo and config.yolo.model.endswith(".yaml")  # from scratch: nothing to download
    # its raster renders are flat, which the command says instead of refusing
    (warning,) = experiments.config.raster_simplifications(config)
    assert "geometry.bend_deg [35, 60]" in warning and "camera_tilt_deg [0, 8]" in warning


def test_appearance_reference_real_is_the_imported_real_dataset(tmp_path):
    _fake_real(tmp_path / "real")
    config = experiments.load_experiment(_experiment(tmp_path))
    config.scenarios[1].overrides["appearance"] = {"reference": "real", "method": "histogram"}
    data = ExperimentData(config, tmp_path / "out")
    recipe = data.synthetic_recipe(config.scenarios[1])
    assert recipe["overrides"]["appearance"]["reference"] == str(data.real_root)
    assert recipe["real"] == data.real_recipe()  # another real split renders other images
    assert "real" not in data.synthetic_recipe(config.scenarios[0])


def test_part_of_a_matrix_is_named_by_scenario_budget_and_kind():
    config = experiments.load_experiment(ROOT / "experiments" / "kolektorsdd_detectors.yaml")
    part = restrict(config, ["real_only", "synthetic_finetuned"], ["10"], ["yolo"])
    cells = [(s.name, b, seed) for s, b, seed in part.detector_cells("yolo")]
    assert cells == [(n, 10, seed) for n in ("real_only", "synthetic_finetuned") for seed in (0, 1, 2)]
    assert part.maskrcnn is None and part.patchcore_pairs() == []
    assert part.yolo is not None and config.yolo is not None
    assert part.yolo.recipe(1) == config.yolo.recipe(1)  # the recipe a cell's key is made of
    assert len(config.detector_cells("yolo")) == 30  # the file itself is untouched

    aitex = experiments.load_experiment(ROOT / "experiments" / "textile_aitex.yaml")
    segment = restrict(aitex, ["synthetic_finetuned"], kinds=["segment"]).segment_cells()
    assert [(s.name, b, seed) for s, b, seed in segment] == [
        ("synthetic_finetuned", 10, s) for s in (0, 1, 2)
    ]
    assert restrict(aitex, ["synthetic_only"]).patchcore_pairs() == [(aitex.scenarios[1], None)]

    one_seed = restrict(config, ["real_only"], ["10"], ["maskrcnn"], [2])
    assert [(s.name, b, seed) for s, b, seed in one_seed.detector_cells("maskrcnn")] == [("real_only", 10, 2)]
    assert one_seed.maskrcnn is not None and config.maskrcnn is not None
    assert one_seed.maskrcnn.recipe(2) == config.maskrcnn.recipe(2)
    legacy = config.model_copy(deep=True)
    assert legacy.yolo is not None
    legacy.yolo.seeds = None  # cells of the file's own seed: none is seed 0
    assert restrict(legacy, seeds=[0]).yolo is None and restrict(legacy).detector_cells("yolo")

    for args, message in [
        ((["nope"],), "--scenario ['nope'] are not among the scenarios"),
        (([], ["5"]), "--budget ['5'] are not among the budgets ['10', 'all']"),
        (([], ["ten"]), "--budget 'ten': expected a count of real images or 'all'"),
        (([], [], ["svm"]), "--kind ['svm']: expected some of ['patchcore', 'yolo', 'maskrcnn', 'segment']"),
        (([], [], [], [0, 7]), "--seed [7] are not among the detector and segment seeds [0, 1, 2]"),
    ]:
        with pytest.raises(experiments.ExperimentError, match=re.escape(message)):
            restrict(config, *args)
