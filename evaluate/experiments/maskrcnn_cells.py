"""Mask R-CNN cells: the detector cells (evaluate.experiments.detector_cells) trained by
train/maskrcnn on the canonical datasets' exact instance masks, every defect class merged into
one class `defect` and impurities made background, so that real and synthetic data share it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evaluate import detector
from evaluate import metrics as m
from evaluate.experiments.config import Budget, MaskRCNNSettings, Scenario, maskrcnn_config
from evaluate.experiments.data import key
from evaluate.experiments.detector_cells import DetectorCells
from synth.annotations import Annotations, ClassInfo
from synth.dataset import Dataset, Sample
from train.tiling import Source

DEFECT = ClassInfo(1, "defect")


def as_defects(annotations: Annotations) -> Annotations:
    """One image's labels with every defect as class `defect` and impurities erased."""
    defects = annotations.defects
    kept = np.isin(annotations.instance_map, [i.instance_id for i in defects])
    return Annotations(
        np.where(kept, annotations.instance_map, 0).astype(np.uint16),
        tuple(replace(i, class_id=DEFECT.id) for i in defects),
        (DEFECT,),
        annotations.mm_per_px,
    )


def defect_sources(root: Path, split: str, images: list[Path] | None = None) -> list[Source]:
    """A canonical split (or its `images`) as tiling sources labelled with `as_defects`."""
    dataset = Dataset(root)
    samples = dataset.samples(split)
    if images is not None:
        wanted = {p.name for p in images}
        samples = [s for s in samples if s.image_path.name in wanted]
    return [
        Source(s.id, s.image_path, lambda s=s: as_defects(s.annotations(dataset.classes))) for s in samples
    ]


class MaskRCNNCells(DetectorCells):
    """Each cell's Mask R-CNN: weights written under a temporary name and renamed when the
    training ends, so a weights file that exists is finished."""

    kind = "maskrcnn"
    settings: MaskRCNNSettings

    def settings_recipe(self, seed: int | None) -> dict[str, Any]:
        """The section's settings and the effective configs, defaults included."""
        config = self.data.config
        recipe = {
            **super().settings_recipe(seed),
            "config": maskrcnn_config(config, seed).model_dump(mode="json"),
        }
        if self.settings.finetune:
            recipe["finetune_config"] = maskrcnn_config(config, seed, finetune=True).model_dump(mode="json")
        return recipe

    def _train(
        self, path: Path, model, train: list[Source], val: list[Source], start: str, data: Path
    ) -> Path:
        from train.maskrcnn.training import train_on

        if not path.exists():
            partial = path.with_name(f".{path.name}.partial")
            partial.parent.mkdir(parents=True, exist_ok=True)
            train_on(model, train, val, partial, start, data)
            partial.rename(path)
        return path

    def pretrained(self, scenario: Scenario, seed: int | None) -> Path:
        """Weights trained on the scenario's synthetic data (validated on its val split), shared
        by the synthetic-only and fine-tuned cells of that seed."""
        from train.maskrcnn.model import MaskRCNNModel

        recipe = {
            "config": maskrcnn_config(self.data.config, seed).model_dump(mode="json"),
            "synthetic": self.data.synthetic_recipe(scenario, self.settings.overrides),
        }
        root = self.data.synthetic_root(scenario, self.settings.overrides)
        model = MaskRCNNModel.new(maskrcnn_config(self.data.config, seed), [DEFECT], self.device)
        path = self.out / "weights" / f"synthetic-{key(recipe)}.pt"
        train, val = defect_sources(root, "train"), defect_sources(root, "val")
        return self._train(path, model, train, val, self.new_start(model), root)

    @staticmethod
    def new_start(model) -> str:
        return f"new:{model.config.backbone}:imagenet"

    @property
    def device(self) -> str:
        from train.devices import default_device

        return default_device()

    def weights(self, scenario: Scenario, budget: Budget | None, seed: int | None, run_dir: Path) -> Path:
        from train.maskrcnn.model import MaskRCNNModel
        from train.yolo.training import mix_real

        if scenario.train == "synthetic":
            return self.pretrained(scenario, seed)
        assert budget is not None
        config = maskrcnn_config(self.data.config, seed)
        real_root = self.data.real_root
        real = defect_sources(real_root, "train", self.data.real_defect_train(budget))
        val = defect_sources(real_root, "val")
        path = run_dir / "weights.pt"
        if scenario.train == "real":
            model = MaskRCNNModel.new(config, [DEFECT], self.device)
            return self._train(path, model, real, val, self.new_start(model), real_root)
        if scenario.train == "finetune":
            base = self.pretrained(scenario, seed)
            tuned = maskrcnn_config(self.data.config, seed, finetune=True).model_dump()
            changed = {k: v for k, v in tuned.items() if v != config.model_dump()[k]}
            model = MaskRCNNModel.load(base, self.device, **changed)
            return self._train(path, model, real, val, f"weights:{base.name}", real_root)
        root = self.data.synthetic_root(scenario, self.settings.overrides)
        mixed, _ = mix_real(defect_sources(root, "train"), real, self.settings.real_fraction, config.seed)
        model = MaskRCNNModel.new(config, [DEFECT], self.device)
        return self._train(path, model, mixed, val, self.new_start(model), real_root)

    def predict(self, weights: Path, samples: list[Sample]) -> tuple[m.Predictions, bool]:
        from train.maskrcnn.model import MaskRCNNModel

        return detector.predict_maskrcnn(MaskRCNNModel.load(weights, self.device), samples), True
