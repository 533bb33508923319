"""YOLO cells: a single-class `defect` detector per scenario and budget, where k counts real
images with labelled defects, scored on the real test split with evaluate.detector's boxes."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evaluate import detector
from evaluate import metrics as m
from evaluate.experiments.config import Budget, ExperimentError, Scenario, YoloSettings, cell_name
from evaluate.experiments.data import ExperimentData, key
from synth.writers import atomic_write_json


class YoloCells:
    """Builds (or finds) each cell's training data and weights, then evaluates them."""

    def __init__(self, data: ExperimentData) -> None:
        self.data = data
        self.out = data.out
        assert data.config.yolo is not None
        self.yolo: YoloSettings = data.config.yolo

    def view(self, source: Path, name: str) -> Path:
        """A single-class copy of a canonical dataset: images hard-linked, defect labels -> 0.

        Impurity labels are dropped (a stain is background). Written to a temporary folder and
        renamed, so a view that exists is complete.
        """
        from synth.dataset import Dataset

        root = self.out / "yolo" / "data" / name
        if root.exists():
            return root
        dataset = Dataset(source)
        defect_ids = {str(c.id - 1) for c in dataset.classes if c.kind == "defect"}
        tmp = root.with_name(f".{name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        splits = [split for split, count in dataset.splits.items() if count]
        for split in splits:
            for sample in dataset.samples(split):
                image = tmp / "images" / split / sample.image_path.name
                image.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(sample.image_path, image)
                except OSError:
                    shutil.copyfile(sample.image_path, image)
                lines = sample.labels_path.read_text().splitlines() if sample.labels_path.exists() else []
                parts = [line.split(maxsplit=1) for line in lines]
                labels = tmp / "labels" / split / f"{sample.id}.txt"
                labels.parent.mkdir(parents=True, exist_ok=True)
                labels.write_text("".join(f"0 {p[1]}\n" for p in parts if len(p) == 2 and p[0] in defect_ids))
        entries = {split: f"images/{split}" for split in splits}
        (tmp / "dataset.yaml").write_text(yaml.safe_dump({"path": ".", **entries, "names": {0: "defect"}}))
        tmp.rename(root)
        return root

    def real(self, budget: Budget) -> Path:
        """A data file over the budget's real train images, validated on the real val split."""
        view = self.view(self.data.real_root, self.data.real_root.name)
        images = "".join(f"images/train/{p.name}\n" for p in self.data.real_defect_train(budget))
        (view / f"train_real{budget}.txt").write_text(images)
        data = {"path": ".", "train": f"train_real{budget}.txt", "val": "images/val", "names": {0: "defect"}}
        path = view / f"real{budget}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def synthetic(self, scenario: Scenario) -> Path:
        root = self.data.synthetic_root(scenario, self.yolo.overrides)
        return self.view(root, root.name)

    def args(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        from train.yolo.training import train_args

        return train_args(**{**self.yolo.train, **(extra or {})})  # checked at load

    @staticmethod
    def trained(run_dir: Path, train) -> Path:
        """The weights of a finished run (its run.json), else of `train()` in a fresh folder."""
        from train.yolo.training import YoloSetupError

        record = run_dir / "run.json"
        if record.exists():
            return Path(json.loads(record.read_text())["weights"])
        shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted run
        try:
            return train().weights
        except YoloSetupError as e:
            raise ExperimentError(f"YOLO {run_dir.name}: {e}") from None

    def pretrained(self, scenario: Scenario) -> Path:
        """Weights trained on the scenario's synthetic data, shared by the cells that use them."""
        from train.yolo.training import pretrain

        data, args = self.synthetic(scenario), self.args()
        run_dir = self.out / "yolo" / "runs" / f"pretrain-{key([data.name, args, self.yolo.model])}"
        return self.trained(run_dir, lambda: pretrain(data, run_dir, args, model=self.yolo.model))

    def weights(self, scenario: Scenario, budget: Budget | None, run_dir: Path) -> Path:
        """The weights of one cell, by how its scenario trains."""
        from train.yolo.training import finetune, meld, pretrain

        y = self.yolo
        if scenario.train == "synthetic":
            return self.pretrained(scenario)
        assert budget is not None
        real = self.real(budget)
        if scenario.train == "real":
            return self.trained(run_dir, lambda: pretrain(real, run_dir, self.args(), model=y.model))
        if scenario.train == "finetune":
            base, args = self.pretrained(scenario), self.args(y.finetune)
            return self.trained(run_dir, lambda: finetune(base, real, run_dir, args))
        data, args = self.synthetic(scenario), self.args()
        return self.trained(run_dir, lambda: meld(data, real, run_dir, args, y.real_fraction, model=y.model))

    def cell_recipe(self, scenario: Scenario, budget: Budget | None) -> dict:
        """Everything a YOLO cell depends on: its real and synthetic data and the settings."""
        recipe: dict[str, Any] = {
            "train": scenario.train,
            "yolo": self.yolo.model_dump(exclude={"scenarios"}),
        }
        if budget is not None:
            recipe["real"] = self.data.real_images_recipe(self.data.real_defect_train(budget))
        if scenario.train != "real":
            recipe["synthetic"] = self.data.synthetic_recipe(scenario, self.yolo.overrides)
        return {**recipe, "test": self.data.real_recipe()}

    def run_cell(self, scenario: Scenario, budget: Budget | None) -> dict:
        name = cell_name(scenario, budget)
        stem = f"{name}-{key(self.cell_recipe(scenario, budget))}"
        path = self.out / "yolo" / "cells" / f"{stem}.json"
        if path.exists():
            return json.loads(path.read_text())
        start = time.perf_counter()
        weights = self.weights(scenario, budget, self.out / "yolo" / "runs" / stem)
        result = self.evaluate(weights, path.with_suffix(""))
        result.update(
            cell=name,
            scenario=scenario.name,
            train=scenario.train,
            real_defect_images=0 if budget is None else len(self.data.real_defect_train(budget)),
            budget=budget,
            weights=str(weights),
            examples_dir=str(path.with_suffix("").relative_to(self.out) / "examples"),
            seconds=time.perf_counter() - start,
        )
        atomic_write_json(path, result)
        return result

    def evaluate(self, weights: Path, out: Path) -> dict:
        """Box metrics of single-class weights on the real test split (see evaluate.detector).

        Every defect instance is a `defect` truth; recall is also given per real class.
        """
        from synth.dataset import Dataset
        from train.yolo.offline import import_ultralytics, load_yolo

        dataset = Dataset(self.data.real_root)
        samples = dataset.samples("test")
        import_ultralytics(self.out / "yolo")
        preds = detector.predict(load_yolo(weights), samples, int(self.args()["imgsz"]))
        names = {c.id: c.name for c in dataset.classes}
        defect_ids = {c.id for c in dataset.classes if c.kind == "defect"}
        defects = {
            image: [t for t in ts if t.class_id in defect_ids]
            for image, ts in detector.truths_of(dataset, samples).items()
        }
        truths = {image: [replace(t, class_id=1) for t in ts] for image, ts in defects.items()}
        good = [s.id for s in samples if s.good]
        result = m.detection_metrics(truths, preds, {1: "defect"}, good, self.yolo.conf)
        found = m.found_instances(truths, preds, self.yolo.conf)
        hits: dict[str, list[bool]] = {}
        for image, ts in defects.items():
            for i, t in enumerate(ts):
                hits.setdefault(names[t.class_id], []).append(i in found[image])
        result["recall_by_class"] = {c: float(np.mean(h)) for c, h in sorted(hits.items())}
        figures = detector.draw_examples(samples, truths, preds, self.yolo.conf, out)
        result["examples"] = [image_id for image_id, _ in figures]
        return result
