"""Click commands `classifier` for `train pretrain|finetune` (thin: the work is in
train.classifier.training; `evaluate hybrid` is evaluate/hybrid.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from train.devices import device_option
from train.options import (
    OUT,
    Finite,
    crop_schedule,
    data_option,
    given,
    image_size,
    init_weights_option,
    stack,
    start_weights_option,
)

# Ranges of the settings are checked by ClassifierConfig (one list, one message); importing it
# here would load torch for every `train --help`.

DATA = data_option(
    "Canonical dataset (repeatable: crops of all are mixed); its val split validates.", multiple=True
)
SCHEDULE = stack(
    *crop_schedule(epochs=15, patience=4, crops=512, batch=32),
    click.option(
        "--good-crops",
        "good_crops_per_image",
        type=click.IntRange(min=0),
        help="Random windows per good image [2].",
    ),
    click.option(
        "--coreset",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="PatchCore coreset whose regions on the images become crops too (false alarms included).",
    ),
    click.option(
        "--region-threshold", type=Finite(), help="Anomaly threshold of those regions [the coreset's own]."
    ),
)


def _proposals(options: dict[str, Any], device: str):
    """The coreset's regions as crops, or None; --region-threshold alone is a mistake."""
    coreset, threshold = options.pop("coreset"), options.pop("region_threshold")
    if coreset is None:
        if threshold is not None:
            raise click.UsageError("--region-threshold needs --coreset")
        return None
    from train.classifier.training import Proposals

    return Proposals.load(coreset, threshold, device)


def _report(model, out: Path) -> None:
    last = min(model.history, key=lambda r: r.get("val_loss", r["loss"])) if model.history else {}
    val = ""
    if "val_loss" in last:
        val = (
            f", best epoch {last['epoch']}: val loss {last['val_loss']:.4f}, balanced accuracy "
            f"{last['val_balanced_accuracy']:.3f}, defects kept {last['val_defects_kept']:.3f}, "
            f"not-a-defect rejected {last['val_rejected']:.3f}"
        )
    click.echo(f"{out}: classes {model.class_names}, {len(model.history)} epochs{val}")


@click.command("classifier")
@DATA
@OUT
@init_weights_option("Backbone")
@click.option("--imgsz", "image_size", type=image_size(32), default=64, show_default=True, help="Crop size.")
@click.option(
    "--train-blocks",
    type=click.IntRange(0, 7),
    default=0,
    show_default=True,
    help="Backbone stages (of 7, from the last) trained with the head; 0 = frozen backbone.",
)
@click.option(
    "--context",
    type=Finite(),
    default=0.5,
    show_default=True,
    help="Surroundings kept on each side, a share of the box.",
)
@SCHEDULE
@device_option
def pretrain_classifier(data: tuple[Path, ...], out: Path, **options: Any) -> None:
    """Train a crop classifier (defect class or not a defect) on the instance crops of
    canonical datasets, synthetic or imported."""
    from train.classifier.config import ClassifierConfig
    from train.classifier.training import pretrain

    proposals = _proposals(options, options["device"])
    _report(pretrain(data, out, ClassifierConfig(**given(options)), proposals), out)


@click.command("classifier")
@start_weights_option("Classifier.")
@DATA
@OUT
@SCHEDULE
@device_option
def finetune_classifier(
    weights: Path, data: tuple[Path, ...], out: Path, device: str, **options: Any
) -> None:
    """Continue a crop classifier on new data (e.g. real crops after synthetic ones)."""
    from train.classifier.training import finetune

    proposals = _proposals(options, device)
    _report(finetune(weights, data, out, device=device, proposals=proposals, **given(options)), out)
