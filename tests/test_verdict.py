"""The verdict of an experiment report: the rule, the lines for cells of three seeds, tables of
every cached cell whichever run made it, and the counts behind the numbers. Cells are cached
results written by hand, so nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evaluate import experiments
from evaluate.cli import main as evaluate_main
from evaluate.experiments.cells import Cell, real_images
from evaluate.experiments.config import ExperimentConfig, set_patchcore_seed
from evaluate.experiments.data import ExperimentData
from evaluate.experiments.patchcore_cells import PatchCoreCells
from evaluate.experiments.tables import real_counts
from evaluate.experiments.verdict import judge, phrase
from evaluate.experiments.yolo_cells import YoloCells
from synth.dataset import Dataset
from tests.test_detector_experiment import YOLO_TRAIN, perlin_experiment

SEEDS = (0, 1, 2)
BOX_MAP50 = {  # per scenario, one value per seed
    "real_only": (0.50, 0.51, 0.52),
    "synthetic_only": (0.20, 0.25, 0.30),
    "synthetic_finetuned": (0.80, 0.82, 0.84),
    "mixed": (0.45, 0.55, 0.60),
    "perlin_only": (0.10, 0.20, 0.30),
    "perlin_finetuned": (0.60, 0.62, 0.64),
}
PIXEL_F1 = {"real_only": (0.30, 0.35, 0.40), "synthetic_finetuned": (0.50,)}  # PatchCore, per PatchCore seed


def test_judge_calls_a_difference_only_when_the_seed_ranges_are_apart():
    above = judge([0.80, 0.82, 0.84], [0.50, 0.51, 0.52])
    assert above.outcome == "better" and above.gap == pytest.approx(0.28)
    assert phrase(above, "box mAP50", "helped:", "hurt:") == (
        "helped: +0.31 box mAP50 (0.82 vs 0.51), seed ranges apart by 0.28"
    )
    below = judge([0.20, 0.25, 0.30], [0.50, 0.51, 0.52])
    assert below.outcome == "worse" and below.gap == pytest.approx(0.20)
    assert phrase(below, "pixel F1", "helped:", "hurt:") == (
        "hurt: -0.26 pixel F1 (0.25 vs 0.51), seed ranges apart by 0.20"
    )
    overlap = judge([0.45, 0.55, 0.60], [0.50, 0.51, 0.52])
    assert overlap.outcome == "overlap"
    assert phrase(overlap, "box mAP50", "helped:", "hurt:") == "no measurable difference (ranges overlap)"
    assert judge([0.6, 0.7], [0.5, 0.6]).outcome == "overlap"  # ranges that touch are not apart
    one = judge([0.9], [0.1, 0.2])
    assert one.outcome == "one seed" and phrase(one, "m", "a", "b") == "one seed: not enough to judge"
    assert judge([0.9, 0.95], [0.1]).outcome == "one seed"
    for values in ([0.9, None], [0.9, float("nan")]):
        undefined = judge(values, [0.1, 0.2])
        assert undefined.outcome == "undefined" and undefined.mean is None
        assert judge([0.1, 0.2], values).outcome == "undefined"
        assert "not enough to judge" in phrase(undefined, "m", "a", "b")


def _experiment(tmp_path: Path) -> Path:
    """The tiny detector experiment with Perlin scenarios, YOLO cells of three seeds and PatchCore
    cells for real_only and synthetic_finetuned."""
    path = perlin_experiment(tmp_path, yolo={"train": YOLO_TRAIN, "seeds": list(SEEDS)})
    doc = yaml.safe_load(path.read_text())
    doc["patchcore_cells"] = ["real_only", "synthetic_finetuned"]
    path.write_text(yaml.safe_dump(doc))
    return path


def _yolo_cell(scenario: str, train: str, budget: int | None, images: int, seed: int, value: float) -> dict:
    return {
        "map50": value,
        "map50_95": value / 2,
        "per_class": {"defect": {"recall": value}},
        "recall_by_class": {"pit": value},
        "good_images_with_false_alarm": 0,
        "good_images": 2,
        "conf": 0.25,
        "examples": [],
        "examples_dir": "examples",
        "cell": f"{scenario}__seed{seed}",
        "model": "yolo",
        "scenario": scenario,
        "train": train,
        "real_defect_images": images,
        "budget": budget,
        "seed": seed,
    }


def _patchcore_cell(scenario: str, train: str, budget: int, seed: int, f1: float) -> dict:
    return {
        "pixel": {"precision": f1, "recall": f1, "f1": f1, "auroc": 0.9, "aupro": 0.5},
        "defect_wise": {"per_class": {"pit": f1}, "mean_defect_recall": f1, "k": 0.0},
        "impurity_recall": {},
        "image": {"auroc": 0.8, "good_images": 2, "good_flagged_rate": 0.5},
        "images": {"defective": 2},
        "figures": {},
        "threshold": 0.5,
        "threshold_source": "max pixel F1 on the validation split",
        "cell": scenario,
        "cell_dir": f"cells/{scenario}-{seed}",
        "scenario": scenario,
        "train": train,
        "real_good_images": budget,
        "budget": budget,
        "patchcore_seed": seed,
    }


def _cache_cells(config: ExperimentConfig, out: Path) -> None:
    """Every YOLO cell of the experiment and the PatchCore cells of PIXEL_F1 (one per PatchCore
    seed, as `--patchcore-seed` runs leave them), written where a run finds them."""
    data = ExperimentData(config, out)
    data.import_real()
    yolo = YoloCells(data)
    for scenario, budget, seed in config.detector_cells("yolo"):
        images = 0 if budget is None else len(data.real_defect_train(budget))
        value = BOX_MAP50[scenario.name][SEEDS.index(seed)]
        cell = _yolo_cell(scenario.name, scenario.train, budget, images, seed, value)
        path = yolo.cell_path(scenario, budget, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cell))
    for scenario, budget in config.patchcore_pairs():
        assert budget is not None
        for seed, f1 in zip(SEEDS, PIXEL_F1[scenario.name], strict=False):
            variant = config.model_copy(deep=True)
            set_patchcore_seed(variant, seed)
            path = PatchCoreCells(ExperimentData(variant, out)).cell_path(scenario, budget)
            path.parent.mkdir(parents=True, exist_ok=True)
            images = len(data.real_good_train(budget))
            path.write_text(json.dumps(_patchcore_cell(scenario.name, scenario.train, images, seed, f1)))


def test_report_and_verdict_json_judge_every_synthetic_scenario_over_three_seeds(tmp_path):
    config = experiments.load_experiment(_experiment(tmp_path))
    out = tmp_path / "out"
    _cache_cells(config, out)
    results = experiments.run(config, out)
    assert len(results.yolo) == 18 and len(results.patchcore) == 2  # this run: the file's PatchCore seed

    verdict = json.loads((out / "verdict.json").read_text())
    lines = [v["line"] for v in verdict["verdicts"]]
    at = "at 2 real defect imgs —"
    assert lines == [
        "PatchCore, synthetic_finetuned vs real_only at 2 real good imgs — one seed: not enough to judge",
        f"YOLO, synthetic_only vs real_only {at} hurt: -0.26 box mAP50 (0.25 vs 0.51), "
        "seed ranges apart by 0.20",
        "YOLO, synthetic_only vs perlin_only at 0 real defect imgs — "
        "no measurable difference (ranges overlap)",
        f"YOLO, synthetic_finetuned vs real_only {at} helped: +0.31 box mAP50 (0.82 vs 0.51), "
        "seed ranges apart by 0.28",
        f"YOLO, synthetic_finetuned vs perlin_finetuned {at} renders beat the 2D baseline by +0.20 box mAP50 "
        "(0.82 vs 0.62), seed ranges apart by 0.16",
        f"YOLO, mixed vs real_only {at} no measurable difference (ranges overlap)",
        f"YOLO, perlin_only vs real_only {at} hurt: -0.31 box mAP50 (0.20 vs 0.51), "
        "seed ranges apart by 0.20",
        f"YOLO, perlin_finetuned vs real_only {at} helped: +0.11 box mAP50 (0.62 vs 0.51), "
        "seed ranges apart by 0.08",
    ]
    helped = verdict["verdicts"][3]
    assert helped["outcome"] == "better" and helped["seeds"] == helped["against_seeds"] == 3
    assert helped["metric"] == "box mAP50" and helped["mean"] == pytest.approx(0.82)
    assert "min–max ranges do not overlap" in verdict["rule"]

    # PatchCore cells of three `--patchcore-seed` runs are one row with their spread
    table = json.loads((out / "table.json").read_text())
    assert table["header"][:4] == ["scenario", "real good imgs", "seeds", "P_px"]
    assert [row[2] for row in table["rows"]] == [3, 1]
    assert table["rows"][0][table["header"].index("F1_px")] == "0.350 (0.300–0.400)"

    # the Perlin cells draw from every real good train image: a `real images` column counts them
    yolo = json.loads((out / "yolo_table.json").read_text())
    good_train = len(ExperimentData(config, out).real_good_train("all"))
    used = {row[0]: row[yolo["header"].index("real images")] for row in yolo["rows"]}
    assert used == {
        "real_only": 2,
        "synthetic_only": 0,
        "synthetic_finetuned": 2,
        "mixed": 2,
        "perlin_only": good_train,
        "perlin_finetuned": 2 + good_train,
    }

    for kind in ("patchcore", "yolo"):
        assert (out / f"{kind}_headline.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert html.index("<h2>Verdict</h2>") < html.index("<h2>Real data</h2>") < html.index("<h2>Summary</h2>")
    assert "renders beat the 2D baseline by +0.20 box mAP50" in html
    assert html.count("data:image/jpeg;base64,") == 2  # the two headline charts
    assert "real_only (PatchCore seed 2)" in html


def test_a_run_of_one_seed_keeps_every_other_cell_in_the_tables_and_report(tmp_path):
    path = _experiment(tmp_path)
    out = tmp_path / "out"
    config = experiments.load_experiment(path)
    _cache_cells(config, out)
    experiments.run(config, out)
    tables = {stem: json.loads((out / f"{stem}.json").read_text()) for stem in ("table", "yolo_table")}
    verdict = json.loads((out / "verdict.json").read_text())

    args = ["domain-gap", str(path), "--out", str(out), "--seed", "1", "--kind", "yolo", "--budget", "2"]
    result = CliRunner().invoke(evaluate_main, args)
    assert result.exit_code == 0, result.output
    assert "0 PatchCore, 6 YOLO, 0 Mask R-CNN and 0 segment cells" in result.output  # only seed 1 ran
    for stem, before in tables.items():
        assert json.loads((out / f"{stem}.json").read_text())["rows"] == before["rows"]
    assert json.loads((out / "verdict.json").read_text()) == verdict
    assert "Verdict:\nPatchCore, synthetic_finetuned vs real_only" in result.output
    assert "YOLO, synthetic_finetuned vs real_only at 2 real defect imgs — helped: +0.31" in result.output
    html = (out / "report.html").read_text()
    assert all(f"YOLO real_only__seed{seed}" in html for seed in SEEDS)


def test_counts_of_the_real_data_and_the_real_images_a_cell_uses(tmp_path):
    config = experiments.load_experiment(_experiment(tmp_path))
    data = ExperimentData(config, tmp_path / "out")
    data.import_real()
    header, rows, warnings = real_counts(data.real_root)
    assert header == ["split", "images", "good", "defective", "pit imgs", "pit instances"]
    dataset = Dataset(data.real_root)
    for row in rows:
        samples = dataset.samples(row[0])
        defective = sum(not s.good for s in samples)
        assert row[1:] == [len(samples), len(samples) - defective, defective, defective, defective]
    assert [row[0] for row in rows] == ["train", "val", "test"]
    assert sum(row[1] for row in rows) == 18 and sum(row[5] for row in rows) == 8  # one blob per pit image
    test_defective = rows[2][3]
    assert warnings == [
        f"the real test split holds {test_defective} defective images (fewer than 20): each image "
        "found or missed moves recall in a big step",
        f"class pit has {test_defective} instances in the real test split (fewer than 5): its recall "
        "rests on too few instances",
    ]

    good_train = len(data.real_good_train("all"))
    assert good_train > 2
    real_only, synthetic_only, finetuned = config.scenarios[:3]
    assert real_images(data, Cell("patchcore", real_only, 2)) == 2
    assert real_images(data, Cell("yolo", finetuned, 2, 0)) == 2
    assert real_images(data, Cell("yolo", synthetic_only, None, 0)) == 0
    # an appearance transfer to the real data draws from every real good train image
    finetuned.overrides["appearance"] = {"reference": "real", "method": "fda"}
    assert real_images(data, Cell("yolo", finetuned, 2, 0)) == 2 + good_train
    assert real_images(data, Cell("patchcore", finetuned, 2)) == good_train  # its 2 are among them
