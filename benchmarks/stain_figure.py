"""Render docs/stain_false_alarms.png: what water stains in the training data change, in pictures.

    .venv/bin/python benchmarks/stain_figure.py experiments/metal_tile_cycles.yaml \
        --out runs/metal_tile_cycles

Needs a finished run of the experiment with `synthetic_test: true`: it reuses the run's cached
coresets and synthetic-test thresholds through the experiment runner. Rows: the synthetic test
images with the most stain pixels. Columns: the image with its stains outlined in cyan, then
the pixels flagged by the `synthetic_only` coreset (trained without stains) and by the
`synthetic_stains` coreset, in the evaluation colours (green = defect found, red = defect
missed, yellow = false alarm).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluate import plots  # noqa: E402
from evaluate.anomaly import Scored, score_split  # noqa: E402
from evaluate.experiments import load_experiment  # noqa: E402
from evaluate.experiments.data import ExperimentData  # noqa: E402
from evaluate.experiments.patchcore_cells import PatchCoreCells  # noqa: E402
from synth.dataset import Dataset  # noqa: E402

SCENARIOS = ("synthetic_only", "synthetic_stains")
STAIN_OUTLINE = (0, 230, 255)


def stain_mask(scored: Scored, impurity_names: set[str]) -> np.ndarray:
    ids = [i for i, name in scored.instance_class.items() if name in impurity_names]
    return np.isin(scored.instance_map, ids)


def outlined(image: np.ndarray, mask: np.ndarray, scale: int) -> np.ndarray:
    """The image scaled up (nearest) with the outline of `mask` drawn on it."""
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    big_mask = cv2.resize(mask.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big_mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return cv2.drawContours(np.ascontiguousarray(big), contours, -1, STAIN_OUTLINE, 1)


def titled(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, tile])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="The experiment's output folder.")
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--scale", type=int, default=2, help="Upscaling of each image.")
    parser.add_argument("--figure", type=Path, default=Path("docs/stain_false_alarms.png"))
    args = parser.parse_args()

    config = load_experiment(args.experiment)
    data = ExperimentData(config, args.out)
    cells = PatchCoreCells(data)
    scenarios = {s.name: s for s in config.scenarios}
    missing = [name for name in SCENARIOS if name not in scenarios]
    if missing or not config.synthetic_test:
        sys.exit(f"{args.experiment}: needs scenarios {list(SCENARIOS)} and synthetic_test: true")
    dataset = Dataset(data.synthetic_root(None))
    impurities = {c.name for c in dataset.classes if c.kind == "impurity"}
    flagged: dict[str, list[np.ndarray]] = {}
    for name in SCENARIOS:
        threshold = cells.run_cell(scenarios[name], None, on_synthetic=True)["threshold"]
        scored = score_split(dataset, "test", cells.coreset(scenarios[name], None).predict)
        flagged[name] = [s.score_map >= threshold for s in scored]
    order = np.argsort([-stain_mask(s, impurities).sum() for s in scored])[: args.rows]
    images = {s.id: s.image() for s in dataset.samples("test")}
    rows = []
    for i in order:
        s = scored[i]
        stains = stain_mask(s, impurities)
        tiles = [outlined(images[s.id], stains, args.scale)]
        for name in SCENARIOS:
            tinted = plots.overlay(images[s.id], flagged[name][i], s.defect_mask)
            tiles.append(outlined(tinted, stains, args.scale))
        rows.append(np.hstack(tiles))
    width = rows[0].shape[1] // 3
    header = np.hstack(
        [titled(np.zeros((0, width, 3), np.uint8), t) for t in ("image, stains outlined", *SCENARIOS)]
    )
    plots.save_rgb(np.vstack([header, *rows]), args.figure)
    print(f"wrote {args.figure} ({args.figure.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
