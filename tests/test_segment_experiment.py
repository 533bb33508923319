"""Segment cells of `evaluate domain-gap`: every scenario, budget and seed trained, scored on the
real test split, tabled with the spread over seeds, cached by recipe, and checked at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluate import experiments
from evaluate.experiments import ExperimentError
from tests.test_detector_experiment import tiny_model_experiment
from tests.test_experiments import ROOT


def _experiment(tmp_path: Path, **segment) -> Path:
    """The detectors' tiny experiment with a segment section instead of detector sections."""
    return tiny_model_experiment(
        tmp_path,
        segment={
            "budgets": [2],
            "seeds": [0, 1],
            "scenarios": ["real_only", "synthetic_finetuned"],
            "train": {"image_size": 64, "epochs": 1, "crops_per_epoch": 8, "batch_size": 4, "val_tiles": 8},
            "finetune": {"lr": 0.0003},
            **segment,
        },
    )


@pytest.mark.timeout(300)
def test_segment_cells_end_to_end_and_cached(tmp_path, monkeypatch):
    config = experiments.load_experiment(_experiment(tmp_path))
    results = experiments.run(config, tmp_path / "out")
    assert results.patchcore == []
    cells = sorted(r["cell"] for r in results.segment)
    assert len(cells) == 4  # two scenarios at k=2, two seeds each
    assert "real_only__real2__seed1" in cells and "synthetic_finetuned__real2__seed0" in cells
    assert {r["real_defect_images"] for r in results.segment if r["train"] != "synthetic"} == {2}
    table = json.loads((tmp_path / "out" / "segment_table.json").read_text())
    assert [row[0] for row in table["rows"]] == ["real_only", "synthetic_finetuned"]
    assert all(row[2] == 2 for row in table["rows"])  # seeds per row
    assert "Supervised segmentation" in (tmp_path / "out" / "report.html").read_text()

    from train.segment import training

    def untrained(*args, **kwargs):
        raise AssertionError("a cached cell was trained again")

    monkeypatch.setattr(training, "train", untrained)
    again = experiments.run(config, tmp_path / "out")
    assert [r["pixel"]["f1"] for r in again.segment] == [r["pixel"]["f1"] for r in results.segment]


def test_bad_segment_sections_fail_at_load(tmp_path):
    with pytest.raises(ExperimentError, match="segment.train: .*multiple of the encoder's stride"):
        experiments.load_experiment(_experiment(tmp_path, train={"image_size": 100}))
    with pytest.raises(ExperimentError, match=r"segment.scenarios \['nope'\]"):
        experiments.load_experiment(_experiment(tmp_path, scenarios=["real_only", "nope"]))
    with pytest.raises(ExperimentError, match="unknown segment settings"):
        experiments.load_experiment(_experiment(tmp_path, finetune={"lrr": 1.0}))


def test_a_budget_beyond_the_real_defect_images_names_the_budget_not_another_model(tmp_path):
    config = experiments.load_experiment(_experiment(tmp_path, budgets=[500]))
    with pytest.raises(ExperimentError) as raised:
        experiments.run(config, tmp_path / "out")
    message = str(raised.value)
    assert "budgets: 500 > the " in message and message.endswith("real defective train images"), message


def test_shipped_segment_experiment_is_valid():
    config = experiments.load_experiment(ROOT / "experiments" / "metal_tile_segment.yaml")
    assert len(config.segment_cells()) == 12 and not config.patchcore_cells
