"""Render time of a 3-set-up burst against one render of the same samples (issue 19).

Run: .venv/bin/python benchmarks/burst_speed.py [--scene experiments/metal_bursts.yaml] [--images 8]
Prints one JSON line. Per sample, each way is timed from the spec to the recorded images:
`single` builds the maps and renders the scene's own lights once; `burst` builds the maps once
and renders the three set-ups (`synth.render.render_sample`'s path); `separate` is what a burst
would cost without sharing, three full single renders (maps built each time). Ratios are of the
medians, all measured in this one run. The scene and its `bursts:` come from the domain-gap
experiment file (its synthetic scene with its overrides), at 256² unless --resolution says.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from evaluate.experiments.config import load_experiment, scene_overrides
from synth.config import deep_merge, load_config
from synth.layers import build_maps
from synth.render import as_recorded, make_renderer
from synth.scene import SceneSpec, sample_scene


def timed(view, specs: list[SceneSpec]) -> float:
    """Seconds from the specs to the recorded images: maps built once per spec."""
    start = time.perf_counter()
    for spec in specs:
        result = view.render(spec, build_maps(spec))
        for k, rgb in enumerate(result.bursts or [result.rgb]):
            as_recorded(rgb, spec, k)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiment", type=Path, default=Path("experiments/metal_bursts.yaml"))
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--renderer", choices=["raster", "cycles"], default="raster")
    args = parser.parse_args()
    experiment = load_experiment(args.experiment)
    assert experiment.synthetic is not None
    extra = {"camera": {"resolution": [args.resolution] * 2}, "splits": {"test": {"good_fraction": 0.0}}}
    config = load_config(experiment.synthetic.scene, deep_merge(scene_overrides(experiment, None), extra))
    assert config.bursts is not None and len(config.bursts) == 3
    test = config.split_counts()["train"] + config.split_counts()["val"]
    bursts = [sample_scene(config, test + i) for i in range(args.images)]
    view = make_renderer(args.renderer)
    timed(view, bursts[:1])  # warm-up: imports, caches
    seconds: dict[str, list[float]] = {"single": [], "burst": [], "separate": []}
    for spec in bursts:  # interleaved, so a change in machine load hits every way alike
        seconds["single"].append(timed(view, [replace(spec, bursts=())]))
        seconds["burst"].append(timed(view, [spec]))
        seconds["separate"].append(
            timed(view, [replace(spec, lights=b.lights, bursts=()) for b in spec.bursts])
        )
    median = {k: statistics.median(v) for k, v in seconds.items()}
    print(
        json.dumps(
            {
                "figure": "burst_render_ratio",
                "renderer": args.renderer,
                "experiment": str(args.experiment),
                "resolution": args.resolution,
                "images": args.images,
                "median_s": {k: round(v, 4) for k, v in median.items()},
                "burst_over_single": round(median["burst"] / median["single"], 2),
                "separate_over_single": round(median["separate"] / median["single"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
