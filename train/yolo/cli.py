"""Click commands `yolo` for the groups `train pretrain|finetune|meld` (see train/cli.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from synth.outputs import OutputPath
from synth.runs import default_out
from train.devices import device_option
from train.options import FREEZE_BACKBONE_EPOCHS, GOOD_TILE_SHARE, OVERLAP, Finite, image_size, stack
from train.yolo import training

TASKS = click.Choice(sorted(training.DEFAULT_MODELS))
DATA = click.Path(exists=True, path_type=Path)


# Options shared by the three commands: where to write, and the train-argument overrides.
RUN_OPTIONS = stack(
    click.option("--out", type=OutputPath(folder=True), help="Run folder [runs/yolo/<mode>/<time>]."),
    click.option(
        "--config",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="YAML of ultralytics train arguments overriding the defect defaults.",
    ),
    click.option("--epochs", type=click.IntRange(min=1), help="Epochs [ultralytics default 100]."),
    click.option(
        "--imgsz",
        type=image_size(32),
        help="Training image size [the tile; else 640 on CPU, 1024 on GPU].",
    ),
    click.option(
        "--tile",
        type=click.IntRange(min=32),
        help="Train on native-resolution tiles of this size, labels cut to each tile "
        "[whole images; fine-tuning keeps the weights' tiling].",
    ),
    OVERLAP,
    GOOD_TILE_SHARE,
    FREEZE_BACKBONE_EPOCHS,
    click.option("--batch", type=click.IntRange(min=1), help="Batch size [8 on CPU, 16 on GPU]."),
    device_option,
    click.option("--workers", type=click.IntRange(min=0), help="Data loader workers [min(8, CPUs)]."),
    click.option("--seed", type=int, help="Seed of the training and of the meld draw [0]."),
    click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Any ultralytics train argument, e.g. --set mosaic=0 (repeatable; wins over all).",
    ),
)


def _args(config: Path | None, sets: tuple[str, ...], **options: Any) -> dict[str, Any]:
    try:
        return training.train_args(config, sets, **options)
    except training.YoloSetupError as error:
        raise click.UsageError(str(error)) from error


def _report(run: Callable[[], training.RunResult]) -> None:
    try:
        result = run()
    except training.YoloSetupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"weights: {result.weights}")
    click.echo(f"record:  {result.run_dir / 'run.json'}")


@click.command("yolo")
@click.option("--data", required=True, type=DATA, help="Canonical dataset root or data YAML.")
@click.option("--task", type=TASKS, help="detect, segment or obb [segment, or the model's task].")
@click.option(
    "--model",
    help="Model YAML (mobilenetv2-yolo-seg.yaml: ImageNet backbone; yolo11n-seg.yaml, yolov8n.yaml: "
    "from scratch) or a local .pt [the ImageNet MobileNetV2 model of the task].",
)
@click.option("--p2", is_flag=True, help="The shipped ImageNet model with a stride-4 (P2) head.")
@RUN_OPTIONS
def pretrain_yolo(
    data: Path,
    task: str | None,
    model: str | None,
    p2: bool,
    out: Path | None,
    config: Path | None,
    sets: tuple[str, ...],
    **options: Any,
) -> None:
    """Train a YOLO detector/segmenter (ImageNet backbone, a from-scratch YAML or a local .pt)
    on a dataset, typically a synthetic one."""
    args = _args(config, sets, **options)
    run_dir = out or default_out("yolo/pretrain")
    _report(lambda: training.pretrain(data, run_dir, args, task=task, model=model, p2=p2))


@click.command("yolo")
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", required=True, type=DATA, help="Canonical dataset root or data YAML.")
@RUN_OPTIONS
def finetune_yolo(
    weights: Path,
    data: Path,
    out: Path | None,
    config: Path | None,
    sets: tuple[str, ...],
    **options: Any,
) -> None:
    """Fine-tune pretrained YOLO weights on a (real) dataset with the same class names."""
    args = _args(config, sets, **options)
    run_dir = out or default_out("yolo/finetune")
    _report(lambda: training.finetune(weights, data, run_dir, args))


@click.command("yolo")
@click.option(
    "--data",
    "datasets",
    required=True,
    multiple=True,
    type=DATA,
    help="Give twice: --data SYNTH_DIR --data REAL_DIR (in that order).",
)
@click.option(
    "--real-fraction",
    type=Finite(0, 1),
    default=0.5,
    show_default=True,
    help="Share of real images in the mixed training list.",
)
@click.option("--task", type=TASKS, help="detect, segment or obb [segment, or the model's task].")
@click.option("--model", help="Model YAML or a local .pt [the ImageNet MobileNetV2 model of the task].")
@click.option("--p2", is_flag=True, help="The shipped ImageNet model with a stride-4 (P2) head.")
@RUN_OPTIONS
def meld_yolo(
    datasets: tuple[Path, ...],
    real_fraction: float,
    task: str | None,
    model: str | None,
    p2: bool,
    out: Path | None,
    config: Path | None,
    sets: tuple[str, ...],
    **options: Any,
) -> None:
    """One training on synthetic data mixed with a controlled share of real images."""
    if len(datasets) != 2:
        raise click.UsageError("meld needs exactly two datasets: --data SYNTH_DIR --data REAL_DIR")
    args = _args(config, sets, **options)
    run_dir = out or default_out("yolo/meld")
    synthetic, real = datasets
    _report(
        lambda: training.meld(synthetic, real, run_dir, args, real_fraction, task=task, model=model, p2=p2)
    )
