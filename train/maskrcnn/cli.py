"""Click commands `maskrcnn` for `train pretrain|finetune` (thin: the work is in
train.maskrcnn.training; `evaluate detector` scores the weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from train.devices import device_option
from train.options import (
    FREEZE_BACKBONE_EPOCHS,
    GOOD_TILE_SHARE,
    OUT,
    OVERLAP,
    Finite,
    data_option,
    given,
    stack,
    start_weights_option,
)

# Choices and ranges are checked by MaskRCNNConfig (one list, one message); importing it here
# would load torch for every `train --help`.

DATA = data_option("Canonical dataset with instance masks: trains on its train split, scores epochs on val.")
# Settings both commands take; unset ones keep the default (or the weights' own).
TRAINING = stack(
    click.option("--tile", type=click.IntRange(min=32), help="Training and inference tile, px [320]."),
    click.option(
        "--input-size",
        type=click.IntRange(min=32),
        help="Longer side a tile is resized to for the network [the tile].",
    ),
    OVERLAP,
    GOOD_TILE_SHARE,
    click.option("--epochs", type=click.IntRange(min=1), help="Epochs [12]."),
    click.option("--batch", "batch_size", type=click.IntRange(min=1), help="Tiles per step [4]."),
    click.option("--lr", type=Finite(min=0, min_open=True), help="AdamW learning rate [3e-4]."),
    click.option(
        "--trainable-stages",
        type=click.IntRange(0, 5),
        help="Backbone stages that train, from the deepest [3].",
    ),
    FREEZE_BACKBONE_EPOCHS,
    click.option(
        "--keep",
        type=click.Choice(["best_val", "last"]),
        help="Weights kept: the epoch with the lowest val loss, or the last [best_val].",
    ),
    click.option("--seed", type=int, help="Seed of order, augmentations and init [0]."),
)


def _report(model, out: Path) -> None:
    last = model.history[-1] if model.history else {}
    val = f", val loss {last['val_loss']:.4f}" if "val_loss" in last else ""
    click.echo(
        f"{out}: Mask R-CNN on {model.config.backbone}, {len(model.history)} epochs of "
        f"{model.trained_on[-1]['tiles']} tiles of {model.config.tile} px, "
        f"loss {last.get('loss', 0):.4f}{val}"
    )


@click.command("maskrcnn")
@DATA
@OUT
@click.option(
    "--backbone",
    default="mobilenet_v2",
    show_default=True,
    help="Offline ImageNet backbone: mobilenet_v2 or efficientnet_lite0.",
)
@TRAINING
@device_option
def pretrain_maskrcnn(data: Path, out: Path, device: str, **options: Any) -> None:
    """Train a Mask R-CNN (FPN over an ImageNet backbone) on a canonical dataset's instance
    masks, cut into native-resolution tiles."""
    from train.maskrcnn.config import MaskRCNNConfig
    from train.maskrcnn.training import pretrain

    config = MaskRCNNConfig.of("train pretrain maskrcnn", **given(options))
    _report(pretrain(data, out, config, device), out)


@click.command("maskrcnn")
@start_weights_option("Mask R-CNN weights (train pretrain maskrcnn).")
@DATA
@OUT
@TRAINING
@device_option
def finetune_maskrcnn(weights: Path, data: Path, out: Path, device: str, **options: Any) -> None:
    """Continue Mask R-CNN weights on new data with the same classes (e.g. a few real images);
    the weights' tiling is kept unless given."""
    from train.maskrcnn.training import finetune

    _report(finetune(weights, data, out, device, **given(options)), out)
