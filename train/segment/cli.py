"""Click commands `segment` for `train pretrain|finetune` (thin: the work is in
train.segment.training; `evaluate segment` is evaluate/segment.py)."""

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

# Choices are checked by SegmentConfig (one list, one message); importing it here would load
# torch for every `train --help`.

DATA = data_option("Canonical dataset with masks: trains on its train split, early-stops on its val split.")
SCHEDULE = stack(
    *crop_schedule(epochs=30, patience=8, crops=256, batch=8),
    click.option(
        "--defect-crop-share",
        type=Finite(0, 1),
        help="Share of crops centred on a defect pixel [0.5].",
    ),
)


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
@init_weights_option("Encoder")
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
    type=image_size(32),
    default=128,
    show_default=True,
    help="Training crop and inference tile (multiple of 32).",
)
@SCHEDULE
@device_option
def pretrain_segment(data: Path, out: Path, **options: Any) -> None:
    """Train a defect segmenter on a canonical dataset's masks (impurities are background);
    rerun the same command to resume after a kill."""
    from train.segment.config import SegmentConfig
    from train.segment.training import pretrain

    model = pretrain(data, out, SegmentConfig(**given(options)))
    _report(model, out)


@click.command("segment")
@start_weights_option("Segmenter.")
@DATA
@OUT
@SCHEDULE
@device_option
def finetune_segment(weights: Path, data: Path, out: Path, device: str, **options: Any) -> None:
    """Continue a segmenter on new data (e.g. a few real images with masks)."""
    from train.segment.training import finetune

    model = finetune(weights, data, out, device=device, **given(options))
    _report(model, out)
