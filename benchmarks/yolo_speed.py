"""YOLO speed on this machine: training epoch time and inference images/s per image size.

Prints one JSON line per figure. Trains on the drawn toy dataset (the speed does not depend on
what the images show), with the defect defaults, in a temporary folder.

    .venv/bin/python benchmarks/yolo_speed.py --sizes 256,640 --device cpu
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from evaluate.predict import yolo_tile_detector
from synth.tiles import detect_tiled
from train.yolo.toydata import make_toy_dataset
from train.yolo.training import pretrain, train_args


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def bench_size(work: Path, size: int, images: int, epochs: int, batch: int, model: str, device: str) -> None:
    import torch
    from ultralytics import YOLO

    data = make_toy_dataset(work / f"data{size}", {"train": images, "val": 4}, size=size)
    args = train_args(epochs=epochs, imgsz=size, batch=batch, workers=0, plots=False, device=device)
    run = pretrain(data, work / f"run{size}", args, model=model)
    with (run.run_dir / "results.csv").open() as f:
        elapsed = [0.0] + [float(row["time"]) for row in csv.DictReader(f)]
    epoch_s = elapsed[-1] - elapsed[-2]  # the last epoch, with its validation on 4 images
    common = {"model": model, "imgsz": size, "device": device, "threads": torch.get_num_threads()}
    emit(
        figure="yolo_train_epoch_s",
        value=round(epoch_s, 3),
        images=images,
        batch=batch,
        epoch=len(elapsed) - 1,
        train_images_per_s=round(images / epoch_s, 2),
        **common,
    )
    yolo = YOLO(run.weights)
    frames = [np.random.default_rng(i).integers(0, 255, (size, size, 3), np.uint8) for i in range(8)]
    kwargs = {"imgsz": size, "device": device, "verbose": False, "conf": 0.25}
    yolo.predict(frames[:2], **kwargs)  # warm-up
    start = time.perf_counter()
    for frame in frames:
        yolo.predict(frame, **kwargs)
    seconds = time.perf_counter() - start
    emit(figure="yolo_predict_images_per_s", value=round(len(frames) / seconds, 2), batch=1, **common)
    # tiled inference of a 2048 x 2048 image with tiles of this size
    detector = yolo_tile_detector(yolo, size, 0.25, 0.5, device)
    big = np.random.default_rng(0).integers(0, 255, (2048, 2048, 3), np.uint8)
    start = time.perf_counter()
    detect_tiled(big, detector, tile=size, overlap=0.35, batch=8)
    emit(
        figure="yolo_tiled_2048_s_per_image",
        value=round(time.perf_counter() - start, 3),
        tile=size,
        overlap=0.35,
        **common,
    )


@click.command()
@click.option("--sizes", default="256,640", show_default=True, help="Comma-separated image sizes.")
@click.option("--images", default=16, show_default=True, help="Training images per epoch.")
@click.option("--epochs", default=2, show_default=True, help="The last epoch is reported.")
@click.option("--batch", default=8, show_default=True)
@click.option("--model", default="yolo11n-seg.yaml", show_default=True)
@click.option("--device", default="cpu", show_default=True)
def main(sizes: str, images: int, epochs: int, batch: int, model: str, device: str) -> None:
    with tempfile.TemporaryDirectory(prefix="yolo-speed-") as work:
        for size in (int(s) for s in sizes.split(",")):
            bench_size(Path(work), size, images, epochs, batch, model, device)


if __name__ == "__main__":
    main()
