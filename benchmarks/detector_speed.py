"""Training and inference tiles/s of both detectors at their shipped recipes, on this machine.

Prints one JSON line per figure. Speed does not depend on what the tiles show, so both train on
the drawn toy dataset (imported into the canonical layout), each image one square tile of
`--tile` px: YOLO with the ImageNet MobileNetV2 detect model (train/yolo/models) and the CPU
recipe's batch of 4 (its backbone frozen in the first of the 2 epochs, trained in the reported
one), Mask R-CNN with its defaults (MobileNetV2 FPN, batch 4). Training speed is the last
epoch's tiles over its seconds (YOLO: ultralytics' epoch time with validation off); inference
is tiles/s through each model's tile detector at the evaluation confidence (0.001), batches of
4.

    OMP_NUM_THREADS=2 nice .venv/bin/python benchmarks/detector_speed.py --tile 320 --device cpu
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from evaluate import importers
from evaluate.detector import MAP_CONF
from evaluate.predict import yolo_tile_detector
from train.yolo.toydata import make_toy_dataset


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def canonical_toy(work: Path, tile: int, images: int) -> Path:
    """The toy dataset at `tile`² in the canonical layout (Mask R-CNN needs instance masks)."""
    toy = make_toy_dataset(work / "toy", {"train": images + images // 4}, size=tile)
    source = importers.scan("yolo", toy, names=["scratch", "stain"])
    importers.import_dataset(source, work / "canonical", (0.8, 0.2, 0.0))  # a val split: YOLO needs one
    return work / "canonical"


def tiles_per_second(detect, tiles: list[np.ndarray], batch: int = 4) -> float:
    detect(tiles[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(tiles), batch):
        detect(tiles[i : i + batch])
    return len(tiles) / (time.perf_counter() - start)


def bench_yolo(work: Path, data: Path, tile: int, epochs: int, device: str, frames: list[np.ndarray]) -> None:
    import torch
    from ultralytics import YOLO

    from train.yolo.training import pretrain, train_args

    # the CPU recipe's batch, schedule and freeze (train/yolo/recipes/cpu.yaml), square tiles
    recipe = {"batch": 4, "freeze_backbone_epochs": 1, "warmup_epochs": 0, "lr0": 0.004}
    args = train_args(epochs=epochs, tile=tile, workers=0, plots=False, val=False, device=device, **recipe)
    run = pretrain(data, work / "yolo", args, task="detect")
    with (run.run_dir / "results.csv").open() as f:
        elapsed = [0.0] + [float(row["time"]) for row in csv.DictReader(f)]
    tiles = len((run.run_dir / "train.txt").read_text().split())
    common = {"detector": "yolo", "model": Path(run.record["model"]).name, "tile": tile, "device": device}
    common["threads"] = torch.get_num_threads()
    emit(
        figure="train_tiles_per_s", value=round(tiles / (elapsed[-1] - elapsed[-2]), 3), tiles=tiles, **common
    )
    detector = yolo_tile_detector(YOLO(run.weights), tile, MAP_CONF, 0.7, device)
    bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
    emit(figure="inference_tiles_per_s", value=round(tiles_per_second(detector, bgr), 3), **common)


def bench_maskrcnn(
    work: Path, data: Path, tile: int, epochs: int, device: str, frames: list[np.ndarray]
) -> None:
    import torch

    from train.maskrcnn.config import MaskRCNNConfig
    from train.maskrcnn.training import pretrain

    model = pretrain(data, work / "maskrcnn.pt", MaskRCNNConfig(tile=tile, epochs=epochs), device)
    last = model.history[-1]
    common = {"detector": "maskrcnn", "model": model.config.backbone, "tile": tile, "device": device}
    common["threads"] = torch.get_num_threads()
    tiles = model.trained_on[-1]["tiles"]
    emit(figure="train_tiles_per_s", value=last["tiles_per_second"], tiles=tiles, **common)
    rate = tiles_per_second(lambda batch: model.detect_tiles(batch, MAP_CONF), frames)
    emit(figure="inference_tiles_per_s", value=round(rate, 3), **common)


@click.command()
@click.option("--tile", default=320, show_default=True, help="Tile side in pixels.")
@click.option("--images", default=16, show_default=True, help="About this many training tiles an epoch.")
@click.option("--epochs", default=2, show_default=True, help="The last epoch is reported.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--detectors", default="yolo,maskrcnn", show_default=True)
def main(tile: int, images: int, epochs: int, device: str, detectors: str) -> None:
    frames = [np.random.default_rng(i).integers(0, 255, (tile, tile, 3), np.uint8) for i in range(12)]
    with tempfile.TemporaryDirectory(prefix="detector-speed-") as folder:
        work = Path(folder)
        data = canonical_toy(work, tile, images)
        if "yolo" in detectors:
            bench_yolo(work, data, tile, epochs, device, frames)
        if "maskrcnn" in detectors:
            bench_maskrcnn(work, data, tile, epochs, device, frames)


if __name__ == "__main__":
    main()
