"""Training a crop classifier: cross-entropy on class-balanced crops, AdamW with a cosine
schedule, the weights of the epoch with the lowest validation loss, early stopping.

The validation crops are the val split's instances and good windows, cut without jitter; with
no val split the training loss is watched instead.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from synth.annotations import Prediction, predictions_from_map
from synth.dataset import Dataset, require_classes
from synth.errors import ConfigError, DataError
from train.checkpoints import weights_start
from train.classifier.config import NOT_A_DEFECT, ClassifierConfig
from train.classifier.data import CropPool, class_names, epoch_batches, fixed_crops, load_crops
from train.classifier.model import CropClassifier


@torch.no_grad()
def validate(model: CropClassifier, crops: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Mean loss, balanced accuracy (mean recall over the classes present), the share of defect
    crops called a defect of any class, and the share of "not a defect" crops rejected."""
    images, labels = crops
    probabilities = model.probabilities(images)
    loss = float(-np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None)).mean())
    predicted = probabilities.argmax(axis=1)
    recalls = [float(np.mean(predicted[labels == c] == c)) for c in np.unique(labels)]
    defect = labels != 0
    return {
        "val_loss": loss,
        "val_balanced_accuracy": float(np.mean(recalls)),
        "val_defects_kept": float(np.mean(predicted[defect] != 0)) if defect.any() else float("nan"),
        "val_rejected": float(np.mean(predicted[~defect] == 0)) if (~defect).any() else float("nan"),
    }


@dataclass(frozen=True)
class Proposals:
    """The regions a PatchCore coreset flags on an image at `threshold`, exactly as `evaluate
    hybrid` proposes them, so the classifier also learns from the false alarms it will see."""

    coreset: Any
    threshold: float
    path: Path

    @classmethod
    def load(cls, path: Path, threshold: float | None, device: str = "cpu") -> Proposals:
        """A coreset file at `threshold` (the coreset's own when None)."""
        from train.patchcore import Coreset

        coreset = Coreset.load(path, device=device)
        level = coreset.threshold if threshold is None else threshold
        if level is None:
            raise ConfigError(f"{path} has no threshold of its own: give --region-threshold")
        return cls(coreset, float(level), Path(path))

    def __call__(self, image: np.ndarray) -> list[Prediction]:
        return predictions_from_map(self.coreset.predict([image])[0][0], self.threshold)

    def record(self) -> dict[str, Any]:
        return {"coreset": str(self.path.resolve()), "threshold": self.threshold}


def _val_crops(
    sources: Sequence[Path], names: list[str], config: ClassifierConfig, proposals: Proposals | None
):
    """The val crops of every source that has a val split, or None when none has."""
    parts = [
        fixed_crops(load_crops(root, "val", config, proposals), names, config)
        for root in sources
        if Dataset(root).samples("val")
    ]
    parts = [p for p in parts if len(p[1])]
    if not parts:
        return None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def train(
    model: CropClassifier,
    sources: Sequence[Path],
    out: Path,
    start_from: str,
    proposals: Proposals | None = None,
) -> CropClassifier:
    """Train `model` on the train crops of `sources` (mixed by class-balanced draws; with
    `proposals`, an anomaly model's regions as well), keep the epoch with the lowest validation
    loss, and save it to `out`."""
    config = model.config
    pools: list[CropPool] = [load_crops(root, "train", config, proposals) for root in sources]
    labels = {c.label for p in pools for c in p.crops}
    if not labels - {NOT_A_DEFECT}:
        raise DataError(
            f"{', '.join(map(str, sources))}: no defect instance in the train split: nothing to learn "
            "(a render's train split is often all good: render defects into it, or add real data)"
        )
    val = _val_crops(sources, model.class_names, config, proposals)
    trained = [p for p in model.network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    loss_fn = torch.nn.CrossEntropyLoss()
    best_loss, best_state, bad_epochs = float("inf"), None, 0
    model.history = []
    regions = proposals.record() if proposals is not None else None
    model.trained_on = [
        {"root": str(Path(r).resolve()), "split": "train", "regions": regions} for r in sources
    ]
    bar = tqdm(range(config.epochs), desc="classifier epochs", unit="epoch")
    for epoch in bar:
        torch.manual_seed(config.seed * 100_003 + epoch)
        model.network.train()
        losses = []
        for images, targets in epoch_batches(pools, model.class_names, config, epoch):
            logits = model.network(model.to_tensor(images))
            loss = loss_fn(logits, torch.from_numpy(targets).to(config.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        schedule.step()
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "lr": schedule.get_last_lr()[0]}
        if val is not None:
            record.update(validate(model, val))
        model.history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k in ("loss", "val_loss")})
        watched = record.get("val_loss", record["loss"])
        if watched < best_loss:
            best_loss, best_state, bad_epochs = watched, copy.deepcopy(model.network.state_dict()), 0
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                break
    bar.close()
    if best_state is not None:
        model.network.load_state_dict(best_state)
    recipe = {"config": config.to_dict(), "sources": model.trained_on, "start": start_from}
    model.save(out, recipe)
    return model


def _check_sources(data: Sequence[Path]) -> list[Path]:
    if not data:
        raise ConfigError("--data: give at least one canonical dataset")
    return [Path(d) for d in data]


def pretrain(
    data: Sequence[Path], out: Path, config: ClassifierConfig, proposals: Proposals | None = None
) -> CropClassifier:
    """Train a new classifier on the train crops of one or more canonical datasets (synthetic,
    real, or both), validated on their val splits."""
    sources = _check_sources(data)
    torch.manual_seed(config.seed)  # the head's random init
    model = CropClassifier.new(config, class_names(sources))
    return train(model, sources, out, f"new:{config.weights}", proposals)


def finetune(
    weights: Path,
    data: Sequence[Path],
    out: Path,
    device: str = "cpu",
    proposals: Proposals | None = None,
    **overrides,
) -> CropClassifier:
    """Continue a classifier on new data (e.g. real crops after synthetic ones); training
    settings may change, the classes may not: every defect class of the data must be one of
    the classifier's."""
    sources = _check_sources(data)
    model = CropClassifier.load(weights, device)
    model.config = model.config.replace(device=device, **overrides)
    for root in sources:
        require_classes((weights, model.class_names[1:]), (root, class_names([root])[1:]), subset=True)
    return train(model, sources, out, weights_start(weights), proposals)
