"""docs/appearance.png: what the camera model and FDA do to a render, beside real tiles.

    nice .venv/bin/python benchmarks/appearance_figure.py REAL_DATASET [--n 5] [--size 128]

Columns: the same good train images of scenes/metal_tile.yaml (raster view, 128 px) clean,
through the grey JPEG camera of experiments/metal_tile_sensor.yaml, and through that camera and
FDA to the real good train images of REAL_DATASET (an imported canonical dataset, e.g. the
`real-*` folder of a domain-gap run); the last column shows real good train tiles.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import yaml

from evaluate.plots import save_rgb
from synth.appearance import reference_images
from synth.config import load_config
from synth.images import read_image
from synth.layers import build_maps
from synth.raster import RasterRenderer
from synth.render import as_recorded
from synth.scene import sample_scene, total_images

REPO = Path(__file__).resolve().parents[1]


def camera_overrides() -> dict:
    """The sensor and FDA settings of the shipped experiment, so the figure shows what ran."""
    doc = yaml.safe_load((REPO / "experiments" / "metal_tile_sensor.yaml").read_text())
    return next(s["overrides"] for s in doc["scenarios"] if s["name"] == "camera_fda")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real", type=Path)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "appearance.png")
    args = parser.parse_args()
    camera = camera_overrides()
    base = {"camera": {"resolution": [args.size, args.size]}, "impurities": []}
    fda = {**camera, "appearance": {**camera["appearance"], "reference": str(args.real)}}
    configs = [
        load_config(REPO / "scenes" / "metal_tile.yaml", {**base, **extra})
        for extra in ({}, {"sensor": camera["sensor"]}, fda)
    ]
    view = RasterRenderer()
    goods = [i for i in range(total_images(configs[0])) if sample_scene(configs[0], i).good][: args.n]
    reals = reference_images(str(args.real))[:: max(1, len(reference_images(str(args.real))) // args.n)]
    rows = []
    for row, index in enumerate(goods):
        clean = view.render(sample_scene(configs[0], index), build_maps(sample_scene(configs[0], index))).rgb
        cells = [as_recorded(clean, sample_scene(c, index)) for c in configs]
        real = cv2.resize(read_image(reals[row]), (args.size, args.size), interpolation=cv2.INTER_AREA)
        rows.append(np.hstack([*cells, real]))
    header = np.full((18, rows[0].shape[1], 3), 255, np.uint8)
    for column, title in enumerate(("clean render", "grey JPEG camera", "camera + FDA", "real (train)")):
        cv2.putText(header, title, (4 + column * args.size, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    save_rgb(np.vstack([header, *rows]), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
