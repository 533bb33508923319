"""Segmenter cells: a supervised defect segmenter (train/segment) per scenario, real budget
(k real train images with defect masks) and seed, scored on the real test split with the
threshold rule of every other cell (max pixel F1 on the real val split)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from evaluate.experiments.config import Budget, Scenario, SegmentSettings, cell_name, segment_config
from evaluate.experiments.data import ExperimentData, key
from synth.writers import atomic_write_json


class SegmentCells:
    """Trains (or finds, keyed by recipe) each cell's segmenter, then evaluates it."""

    def __init__(self, data: ExperimentData) -> None:
        self.data = data
        self.out = data.out / "segment"
        assert data.config.segment is not None
        self.segment: SegmentSettings = data.config.segment
        for budget in self.segment.budgets:  # every budget checked before any training
            data.real_defect_train(budget)

    def real_source(self, budget: Budget):
        from train.segment.data import TrainSource

        ids = tuple(sorted(p.stem for p in self.data.real_defect_train(budget)))
        return TrainSource(self.data.real_root, "train", ids)

    def synthetic_root(self, scenario: Scenario) -> Path:
        return self.data.synthetic_root(scenario, self.segment.overrides)

    def _recipes(self, scenario: Scenario, budget: Budget | None, seed: int) -> dict[str, Any]:
        """What a cell's weights depend on, by role: synthetic data, real images, settings."""
        recipe: dict[str, Any] = {
            "train": scenario.train,
            "segment": segment_config(self.data.config, seed).to_dict(),
        }
        if scenario.train != "real":
            recipe["synthetic"] = self.data.synthetic_recipe(scenario, self.segment.overrides)
        if budget is not None:
            recipe["real"] = self.data.real_images_recipe(self.data.real_defect_train(budget))
        if scenario.train == "finetune":
            recipe["finetune"] = segment_config(self.data.config, seed, finetune=True).to_dict()
        return recipe

    def pretrained(self, scenario: Scenario, seed: int) -> Path:
        """Weights trained on the scenario's synthetic data (validated on its val split),
        shared by the synthetic-only and fine-tuned cells of that seed."""
        from train.segment.data import TrainSource
        from train.segment.training import pretrain

        recipe = {
            k: v for k, v in self._recipes(scenario, None, seed).items() if k in ("segment", "synthetic")
        }
        path = self.out / "weights" / f"synthetic-{key(recipe)}.pt"
        root = self.synthetic_root(scenario)
        pretrain([TrainSource(root)], path, segment_config(self.data.config, seed), TrainSource(root, "val"))
        return path

    def model(self, scenario: Scenario, budget: Budget | None, seed: int):
        """The trained segmenter of one cell, by how its scenario trains; every run resumes from
        its own checkpoint after a kill."""
        from train.segment.data import TrainSource
        from train.segment.model import Segmenter
        from train.segment.training import finetune, pretrain

        config = segment_config(self.data.config, seed)
        if scenario.train == "synthetic":
            return Segmenter.load(self.pretrained(scenario, seed))
        assert budget is not None
        path = self.out / "weights" / f"{scenario.train}-{key(self._recipes(scenario, budget, seed))}.pt"
        real, val = self.real_source(budget), TrainSource(self.data.real_root, "val")
        if scenario.train == "real":
            return pretrain([real], path, config, val)
        if scenario.train == "finetune":
            tuned = segment_config(self.data.config, seed, finetune=True)
            changed = {k: v for k, v in tuned.to_dict().items() if v != config.to_dict()[k]}
            return finetune(self.pretrained(scenario, seed), [real], path, val, **changed)
        return pretrain([TrainSource(self.synthetic_root(scenario)), real], path, config, val)

    def cell_recipe(self, scenario: Scenario, budget: Budget | None, seed: int) -> dict:
        return {
            **self._recipes(scenario, budget, seed),
            "test": self.data.real_recipe(),
            "coverage_k": self.data.config.coverage_k,
        }

    def cell_path(self, scenario: Scenario, budget: Budget | None, seed: int) -> Path:
        """Where a cell's result is cached (named by its key)."""
        return (
            self.out
            / "cells"
            / f"{cell_name(scenario, budget, seed)}-{key(self.cell_recipe(scenario, budget, seed))}.json"
        )

    def run_cell(self, scenario: Scenario, budget: Budget | None, seed: int) -> dict:
        from evaluate.segment import evaluate_segmenter

        name = cell_name(scenario, budget, seed)
        path = self.cell_path(scenario, budget, seed)
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        model = self.model(scenario, budget, seed)
        result = evaluate_segmenter(
            model, self.data.real_root, path.with_suffix(""), self.data.config.coverage_k
        )
        result.update(
            cell=name,
            cell_dir=str(path.with_suffix("").relative_to(self.data.out)),
            scenario=scenario.name,
            train=scenario.train,
            budget=budget,
            seed=seed,
            real_defect_images=0 if budget is None else len(self.data.real_defect_train(budget)),
            epochs=len(model.history),
            seconds=time.perf_counter() - start,
        )
        atomic_write_json(path, result)
        return result
