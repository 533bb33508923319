"""Segment cells of `evaluate domain-gap`: every scenario, budget and seed trained, scored on the
real test split, tabled with the spread over seeds, cached by recipe, and checked at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evaluate import experiments
from evaluate.experiments import ExperimentError
from tests.test_experiments import ROOT, _fake_real


def _experiment(tmp_path: Path, **segment) -> Path:
    _fake_real(tmp_path / "real")
    doc = {
        "name": "tiny_segment",
        "real": {"format": "folders", "src": "real", "split": [0.5, 0.25, 0.25], "group_pattern": r"exp\d+"},
        "synthetic": {
            "scene": str(ROOT / "scenes" / "metal_tile.yaml"),
            "n": 8,
            "renderer": "raster",
            "overrides": {"camera": {"resolution": [64, 64]}, "splits": {"train": {"good_fraction": 0.0}}},
        },
        "budgets": [2],
        "patchcore_cells": False,
        "scenarios": [
            {"name": "real_only", "train": "real"},
            {"name": "synthetic_only", "train": "synthetic"},
            {"name": "synthetic_finetuned", "train": "finetune"},
            {"name": "mixed", "train": "meld"},
        ],
        "segment": {
            "budgets": [2],
            "seeds": [0, 1],
            "scenarios": ["real_only", "synthetic_finetuned"],
            "train": {"image_size": 64, "epochs": 1, "crops_per_epoch": 8, "batch_size": 4, "val_tiles": 8},
            "finetune": {"lr": 0.0003},
            **segment,
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


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


def test_shipped_segment_experiment_is_valid():
    config = experiments.load_experiment(ROOT / "experiments" / "metal_tile_segment.yaml")
    assert len(config.segment_cells()) == 12 and not config.patchcore_cells
