"""What the detector cells (YOLO, Mask R-CNN) share: a single-class `defect` detector per
scenario, budget and seed, where k counts real images with labelled defects, scored on the real
test split with evaluate.detector's box metrics, and mask metrics for models that predict masks.
Each kind says how its weights are trained (`weights`) and how they predict (`predict`)."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from evaluate import detector
from evaluate import metrics as m
from evaluate.experiments.config import Budget, DetectorSettings, Scenario, cell_name
from evaluate.experiments.data import ExperimentData, key
from synth.dataset import Dataset, Sample
from synth.writers import atomic_write_json


class DetectorCells(ABC):
    """Trains (or finds, keyed by recipe) each cell's weights under `out/<kind>`, then evaluates
    them."""

    kind: ClassVar[str]  # the experiment's section and output folder: "yolo" or "maskrcnn"

    def __init__(self, data: ExperimentData) -> None:
        self.data = data
        self.out = data.out / self.kind
        settings = getattr(data.config, self.kind)
        assert settings is not None
        self.settings: DetectorSettings = settings

    @abstractmethod
    def weights(self, scenario: Scenario, budget: Budget | None, seed: int | None, run_dir: Path) -> Path:
        """The trained weights of one cell, by how its scenario trains."""

    @abstractmethod
    def predict(self, weights: Path, samples: list[Sample]) -> tuple[m.Predictions, bool]:
        """Predictions on `samples` in canonical class ids (defect = 1), and whether they have masks."""

    def settings_recipe(self, seed: int | None) -> dict[str, Any]:
        return self.settings.recipe(seed)

    def cell_recipe(self, scenario: Scenario, budget: Budget | None, seed: int | None) -> dict:
        """Everything a cell depends on: its real and synthetic data and the settings."""
        recipe: dict[str, Any] = {"train": scenario.train, self.kind: self.settings_recipe(seed)}
        if budget is not None:
            recipe["real"] = self.data.real_images_recipe(self.data.real_defect_train(budget))
        if scenario.train != "real":
            recipe["synthetic"] = self.data.synthetic_recipe(scenario, self.settings.overrides)
        return {**recipe, "test": self.data.real_recipe()}

    def cell_path(self, scenario: Scenario, budget: Budget | None, seed: int | None) -> Path:
        """Where a cell's result is cached (named by its key)."""
        stem = f"{cell_name(scenario, budget, seed)}-{key(self.cell_recipe(scenario, budget, seed))}"
        return self.out / "cells" / f"{stem}.json"

    def run_cell(self, scenario: Scenario, budget: Budget | None, seed: int | None) -> dict:
        name = cell_name(scenario, budget, seed)
        path = self.cell_path(scenario, budget, seed)
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        weights = self.weights(scenario, budget, seed, self.out / "runs" / path.stem)
        result = self.evaluate(weights, path.with_suffix(""))
        result.update(
            cell=name,
            model=self.kind,
            scenario=scenario.name,
            train=scenario.train,
            real_defect_images=0 if budget is None else len(self.data.real_defect_train(budget)),
            budget=budget,
            seed=seed,
            weights=str(weights),
            examples_dir=str(path.with_suffix("").relative_to(self.data.out) / "examples"),
            seconds=time.perf_counter() - start,
        )
        atomic_write_json(path, result)
        return result

    def evaluate(self, weights: Path, out: Path) -> dict:
        """Box (and mask) metrics of single-class weights on the real test split (see
        evaluate.detector). Every defect instance is a `defect` truth; recall is also given per
        real class."""
        dataset = Dataset(self.data.real_root)
        samples = dataset.samples("test")
        preds, with_masks = self.predict(weights, samples)
        names = {c.id: c.name for c in dataset.classes}
        defect_ids = {c.id for c in dataset.classes if c.kind == "defect"}
        annotations = detector.annotations_of(dataset, samples)
        defects = {
            image: [t for t in a.instances if t.class_id in defect_ids] for image, a in annotations.items()
        }
        truths = {image: [replace(t, class_id=1) for t in ts] for image, ts in defects.items()}
        good = [s.id for s in samples if s.good]
        conf = self.settings.conf
        masks = annotations if with_masks else None
        result = m.detection_metrics(truths, preds, {1: "defect"}, good, conf, masks=masks)
        found = m.found_instances(truths, preds, conf)
        hits: dict[str, list[bool]] = {}
        for image, ts in defects.items():
            for i, t in enumerate(ts):
                hits.setdefault(names[t.class_id], []).append(i in found[image])
        result["recall_by_class"] = {c: float(np.mean(h)) for c, h in sorted(hits.items())}
        figures = detector.draw_examples(samples, truths, preds, conf, out)
        result["examples"] = [image_id for image_id, _ in figures]
        return result
