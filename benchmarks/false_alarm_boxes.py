"""What do a detector's false alarms on good images look like, beside its detections on
defective ones? Box width and height as a share of the image, and scores, at the working
confidence, from one set of weights (YOLO or Mask R-CNN) on a canonical dataset's split:

    nice .venv/bin/python benchmarks/false_alarm_boxes.py WEIGHTS DATASET [--split test] [--conf 0.25]

Every box on a good image (the dataset's own `good`: no defect label) is counted as a false
alarm, also one over an impurity; boxes on defective images are counted apart (most of them
hit a defect). If the false alarms have another shape than the detections, the
training data taught that shape (e.g. wide bands); if their scores are as high, no confidence
threshold separates them.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from evaluate.detector import WORKING_CONF, load_detector, predict_with
from evaluate.report import markdown_table
from synth.dataset import Dataset
from train.devices import default_device


def summary(rows: list[tuple[float, float, float]]) -> list[str]:
    if not rows:
        return ["0", "–", "–", "–", "–"]
    a = np.array(rows)
    return [
        str(len(a)),
        f"{np.median(a[:, 0]):.2f}",
        f"{(a[:, 0] > 0.6).mean():.2f}",
        f"{np.median(a[:, 1]):.2f}",
        f"{np.median(a[:, 2]):.2f} ({(a[:, 2] > 0.5).mean():.2f})",
    ]


@click.command()
@click.argument("weights", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True)
@click.option("--conf", default=WORKING_CONF, show_default=True, type=click.FloatRange(0, 1))
@click.option(
    "--out",
    default=Path("runs/false_alarm_boxes"),
    show_default=True,
    type=Path,
    help="YOLO's settings folder.",
)
def main(weights: Path, dataset: Path, split: str, conf: float, out: Path) -> None:
    samples = list(Dataset(dataset).samples(split))
    model, kind, _ = load_detector(weights, dataset, out, default_device())
    predictions = predict_with(model, kind, samples)
    boxes: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}  # by sample.good
    for sample in samples:
        height, width = sample.instance_map().shape
        for p in predictions[sample.id]:
            if p.score >= conf:
                x0, y0, x1, y1 = p.box
                boxes[sample.good].append(((x1 - x0) / width, (y1 - y0) / height, p.score))
    header = [
        "boxes on",
        "boxes",
        "width share median",
        "width > 0.6",
        "height share median",
        "score median (> 0.5)",
    ]
    rows = [
        ["good images (false alarms)", *summary(boxes[True])],
        ["defective images", *summary(boxes[False])],
    ]
    click.echo(markdown_table(header, rows))


if __name__ == "__main__":
    main()
