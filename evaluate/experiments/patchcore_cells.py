"""PatchCore cells: each scenario's coreset (cached by its recipe) scored on a test split."""

from __future__ import annotations

import json
import time
from pathlib import Path

from evaluate import anomaly
from evaluate.experiments.config import Budget, Scenario, cell_name, patchcore_config
from evaluate.experiments.data import ExperimentData, key
from synth.writers import atomic_write_json


class PatchCoreCells:
    """Builds (or finds in the cache) the coreset of each cell, then evaluates it."""

    def __init__(self, data: ExperimentData) -> None:
        self.data = data
        self.config = data.config
        self.out = data.out

    def _recipes(self, scenario: Scenario, budget: Budget | None) -> dict[str, dict]:
        """The recipes of the coresets a cell is built from, by role: its synthetic pretrained
        one and its real one, each keyed by its data and the scenario's effective PatchCore
        settings (so `--patchcore-seed 0` and the file's seed 0 are the same coreset)."""
        settings = patchcore_config(self.config, scenario).to_dict()
        parts = {}
        if scenario.train != "real":
            parts["synthetic"] = {"data": self.data.synthetic_recipe(scenario), "patchcore": settings}
        if budget is not None:
            real = self.data.real_images_recipe(self.data.real_good_train(budget))
            parts["real"] = {"data": real, "patchcore": settings}
        return parts

    def coreset_recipe(self, scenario: Scenario, budget: Budget | None) -> dict:
        """Everything a cell's coreset depends on."""
        return {"train": scenario.train, **self._recipes(scenario, budget)}

    def _cached(self, recipe: dict, build):
        """A coreset from the cache, or built and saved (atomically) under its key."""
        from train.patchcore import Coreset

        path = self.out / "coresets" / f"{recipe['train']}-{key(recipe)}.safetensors"
        if path.exists():
            return Coreset.load(path)
        coreset = build()
        coreset.save(path)
        return coreset

    def coreset(self, scenario: Scenario, budget: Budget | None):
        """The coreset of one cell, by how its scenario trains."""
        from train.patchcore import finetune, meld, pretrain

        config = patchcore_config(self.config, scenario)
        parts = self._recipes(scenario, budget)

        def real():
            paths = self.data.real_good_train(budget)
            return self._cached({"train": "real", "real": parts["real"]}, lambda: pretrain(paths, config))

        if scenario.train == "real":
            return real()
        synthetic_recipe = {"train": "synthetic", "synthetic": parts["synthetic"]}
        base = self._cached(synthetic_recipe, lambda: pretrain(self.data.synthetic_root(scenario), config))
        if scenario.train == "synthetic":
            return base
        if scenario.train == "finetune":
            paths = self.data.real_good_train(budget)
            return self._cached(self.coreset_recipe(scenario, budget), lambda: finetune(base, paths))
        return meld([base, real()], size=base.size)

    def cell_recipe(self, scenario: Scenario, budget: Budget | None, on_synthetic: bool) -> dict:
        """A cell's result depends on its coreset, the data it is scored on and the rule."""
        test = self.data.synthetic_recipe(None) if on_synthetic else self.data.real_recipe()
        return {
            "coreset": self.coreset_recipe(scenario, budget),
            "test": test,
            "coverage_k": self.config.coverage_k,
        }

    def cell_path(self, scenario: Scenario, budget: Budget | None, on_synthetic: bool = False) -> Path:
        """Where a cell's result is cached (named by its key)."""
        stem = f"{cell_name(scenario, budget)}-{key(self.cell_recipe(scenario, budget, on_synthetic))}"
        return self.out / ("synthetic_test" if on_synthetic else "cells") / f"{stem}.json"

    def run_cell(self, scenario: Scenario, budget: Budget | None, on_synthetic: bool = False) -> dict:
        """One cell's result on the real test split, or on the synthetic one (`on_synthetic`)."""
        name = cell_name(scenario, budget)
        path = self.cell_path(scenario, budget, on_synthetic)
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        coreset = self.coreset(scenario, budget)
        data = self.data.synthetic_root(None) if on_synthetic else self.data.real_root
        result = anomaly.evaluate_predictor(
            coreset.predict,
            data,
            path.with_suffix(""),
            coreset.threshold,
            self.config.coverage_k,
            view=coreset.config.burst,
        )
        result.update(
            data=str(data),
            cell=name,
            cell_dir=str(path.with_suffix("").relative_to(self.out)),
            scenario=scenario.name,
            train=scenario.train,
            real_good_images=0 if budget is None else len(self.data.real_good_train(budget)),
            budget=budget,
            coreset_datasets=coreset.datasets,
            patchcore_seed=patchcore_config(self.config, scenario).seed,
            seconds=time.perf_counter() - start,
        )
        atomic_write_json(path, result)
        return result
