"""YOLO cells: the detector cells (evaluate.experiments.detector_cells) trained by ultralytics on
single-class views of the canonical datasets."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from evaluate import detector
from evaluate import metrics as m
from evaluate.experiments.config import Budget, ExperimentError, Scenario, YoloSettings
from evaluate.experiments.data import key
from evaluate.experiments.detector_cells import DetectorCells
from synth.dataset import Dataset, Sample


class YoloCells(DetectorCells):
    """Builds (or finds) each cell's training data and weights."""

    kind = "yolo"
    settings: YoloSettings

    def view(self, source: Path, name: str) -> Path:
        """A single-class copy of a canonical dataset: images hard-linked, defect labels -> 0.

        Impurity labels are dropped (a stain is background). Written to a temporary folder and
        renamed, so a view that exists is complete.
        """
        root = self.out / "data" / name
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
        root = self.data.synthetic_root(scenario, self.settings.overrides)
        return self.view(root, root.name)

    def args(self, seed: int | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        from train.yolo.training import train_args

        fields = {**self.settings.train, **(extra or {})}
        return train_args(**self.settings.seeded(fields, seed))  # checked at load

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

    def pretrained(self, scenario: Scenario, seed: int | None) -> Path:
        """Weights trained on the scenario's synthetic data, shared by the cells that use them."""
        from train.yolo.training import pretrain

        model = self.settings.model
        data, args = self.synthetic(scenario), self.args(seed)
        run_dir = self.out / "runs" / f"pretrain-{key([data.name, args, model])}"
        return self.trained(run_dir, lambda: pretrain(data, run_dir, args, model=model))

    def weights(self, scenario: Scenario, budget: Budget | None, seed: int | None, run_dir: Path) -> Path:
        from train.yolo.training import finetune, meld, pretrain

        y = self.settings
        if scenario.train == "synthetic":
            return self.pretrained(scenario, seed)
        assert budget is not None
        real = self.real(budget)
        if scenario.train == "real":
            return self.trained(run_dir, lambda: pretrain(real, run_dir, self.args(seed), model=y.model))
        if scenario.train == "finetune":
            base, args = self.pretrained(scenario, seed), self.args(seed, y.finetune)
            return self.trained(run_dir, lambda: finetune(base, real, run_dir, args))
        data, args = self.synthetic(scenario), self.args(seed)
        return self.trained(run_dir, lambda: meld(data, real, run_dir, args, y.real_fraction, model=y.model))

    def predict(self, weights: Path, samples: list[Sample]) -> tuple[m.Predictions, bool]:
        """At the cells' training size; a segment model's masks come with its boxes."""
        from train.yolo.offline import import_ultralytics, load_yolo

        import_ultralytics(self.out)
        model = load_yolo(weights)
        imgsz = int(self.args(None)["imgsz"])
        return detector.predict(model, samples, imgsz), model.task == "segment"
