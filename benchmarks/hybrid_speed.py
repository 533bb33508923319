"""Inference time per image of the two-stage hybrid against PatchCore alone, on CPU.

    nice .venv/bin/python benchmarks/hybrid_speed.py --coreset C --classifier W --data DIR \
        [--threshold T] [--images 40] [--repeats 3]

One image at a time, as an inspection station sees them: PatchCore alone is the anomaly map of
one image and its regions at the threshold (`synth.annotations.predictions_from_map`); the hybrid is the
same plus the classifier on each region's crop (`evaluate.hybrid.inspect`). Both run on the same
test images in alternation, after one warm-up image, and the median over `repeats` passes of
each image is kept. Prints one JSON line per figure, then a Markdown row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coreset", type=Path, required=True)
    parser.add_argument("--classifier", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="Canonical dataset: its test images.")
    parser.add_argument("--threshold", type=float, help="Anomaly threshold [the coreset's own].")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from evaluate.anomaly import Scored
    from evaluate.hybrid import inspect
    from synth.annotations import predictions_from_map
    from synth.dataset import Dataset
    from train.classifier.model import CropClassifier
    from train.patchcore import Coreset

    coreset = Coreset.load(args.coreset)
    classifier = CropClassifier.load(args.classifier)
    threshold = coreset.threshold if args.threshold is None else args.threshold
    dataset = Dataset(args.data)
    samples = dataset.samples("test")[: args.images]
    images = [s.image() for s in samples]
    annotations = [s.annotations(dataset.classes) for s in samples]

    def patchcore(image: np.ndarray) -> list:
        maps, scores = coreset.predict([image])
        return predictions_from_map(maps[0], threshold)

    def hybrid(image: np.ndarray, labels) -> None:
        maps, scores = coreset.predict([image])
        inspect(Scored("x", maps[0], float(scores[0]), labels), image, threshold, classifier)

    hybrid(images[0], annotations[0])  # warm-up: first calls build the models' kernels
    alone, both, regions = [], [], []
    for image, labels in zip(images, annotations, strict=True):
        alone.append(timed(lambda image=image: patchcore(image), args.repeats))
        both.append(timed(lambda image=image, labels=labels: hybrid(image, labels), args.repeats))
        regions.append(len(patchcore(image)))
    figures = {
        "images": len(images),
        "threads": torch.get_num_threads(),
        "threshold": threshold,
        "regions_per_image": float(np.mean(regions)),
        "patchcore_s_per_image": float(np.mean(alone)),
        "hybrid_s_per_image": float(np.mean(both)),
        "ratio": float(np.mean(both) / np.mean(alone)),
    }
    for name, value in figures.items():
        print(json.dumps({"figure": name, "value": value}))
    print("| images | threads | regions/image | PatchCore s/image | hybrid s/image | ratio |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {len(images)} | {figures['threads']} | {figures['regions_per_image']:.2f} | "
        f"{figures['patchcore_s_per_image']:.4f} | {figures['hybrid_s_per_image']:.4f} | "
        f"{figures['ratio']:.2f} |"
    )


if __name__ == "__main__":
    main()
