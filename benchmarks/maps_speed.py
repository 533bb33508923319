"""Time to build all texture-space maps of one 1024² sample (issue target: < 1 s).

Run: .venv/bin/python benchmarks/maps_speed.py [--scene scenes/leather.yaml] [--repeats 7]
Prints one JSON line per figure. The scene is forced to 1024² texels, every image defective,
and stains on, so the figure covers the busiest case of the config.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from synth.config import load_config
from synth.layers import build_maps
from synth.scene import sample_scene


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scene", default="scenes/leather.yaml")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    base = load_config(args.scene)
    overrides = {
        "camera": base.camera.model_copy(update={"resolution": (1024, 1024)}),
        "render": base.render.model_copy(update={"texels_per_px": 1}),
        "impurities": [i.model_copy(update={"probability": 1.0}) for i in base.impurities],
        "splits": {
            "test": base.splits["test"].model_copy(update={"count": args.repeats, "good_fraction": 0.0})
        },
    }
    config = base.model_copy(update=overrides)
    seconds, instances = [], []
    for index in range(args.repeats):
        spec = sample_scene(config, index)
        start = time.perf_counter()
        maps = build_maps(spec)
        seconds.append(time.perf_counter() - start)
        instances.append(len(spec.stains) + len(spec.marks))
    print(
        json.dumps(
            {
                "figure": "maps_seconds_1024",
                "scene": args.scene,
                "texels": list(maps.shape),
                "median_s": round(statistics.median(seconds), 4),
                "max_s": round(max(seconds), 4),
                "instances_median": statistics.median(instances),
                "repeats": args.repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
