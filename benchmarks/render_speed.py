"""Blender render speed: seconds per image, pipeline overhead vs path tracing, peak memory.

    nice .venv/bin/python benchmarks/render_speed.py [--scene scenes/leather.yaml] [--images 3]

Prints one JSON line per figure. The overhead (scene updates, map upload, Cycles scene sync,
the id pass, readback and tone mapping: everything but Cycles' sampling and denoising) is
reported as a ratio of the path-tracing time measured on the same images, because the machine
is shared and absolute times are noisy. `synth.layers.build_maps` is not counted: it is the
caller's work (see benchmarks/maps_speed.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

from synth.blender import BlenderRenderer, blender_version
from synth.config import load_config
from synth.layers import build_maps
from synth.scene import sample_scene, total_images

SETTINGS = [(256, 16), (256, 64), (512, 16), (512, 64)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="scenes/leather.yaml")
    parser.add_argument("--images", type=int, default=3, help="images per setting")
    args = parser.parse_args()

    start = time.perf_counter()
    renderer = BlenderRenderer()
    emit(figure="renderer_init_s", value=time.perf_counter() - start, blender=blender_version())
    warmed = False
    for resolution, samples in SETTINGS:
        overrides = {"camera": {"resolution": [resolution, resolution]}, "render": {"samples": samples}}
        config = load_config(args.scene, overrides)
        specs = [sample_scene(config, i % total_images(config)) for i in range(args.images)]
        if not warmed:  # the first render loads kernels; keep it out of the figures
            tick = time.perf_counter()
            renderer.render(specs[0], build_maps(specs[0]))
            emit(figure="first_image_s", value=time.perf_counter() - tick, resolution=resolution)
            warmed = True
        runs = [renderer.render(spec, build_maps(spec)).timings for spec in specs]
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        path_tracing = sum(run["path_tracing"] for run in runs)
        overhead = sum(run["overhead"] for run in runs)
        common = {"scene": config.name, "resolution": resolution, "samples": samples}
        emit(figure="seconds_per_image", value=median["total"], **common, images=len(runs))
        emit(figure="overhead_ratio", value=overhead / path_tracing, **common,
             parts_median_s={k: round(v, 4) for k, v in median.items()})  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    emit(figure="peak_rss_mb", value=peak_mb)
    renderer.close()


def emit(**fields: object) -> None:
    value = fields.get("value")
    if isinstance(value, float):
        fields["value"] = round(value, 4)
    print(json.dumps(fields), flush=True)


if __name__ == "__main__":
    main()
