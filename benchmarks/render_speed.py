"""Blender render speed: seconds per image, pipeline overhead vs path tracing, peak memory, on
the CPU or a GPU, with the denoiser and adaptive sampling on or off.

    nice .venv/bin/python benchmarks/render_speed.py [--scene scenes/leather.yaml] [--images 3]
        [--device cpu|cuda|optix|hip] [--settings 256x16,512x64] [--variants scene,raw,adaptive]

Prints one JSON line per figure. The overhead (scene updates, map upload, Cycles scene sync,
the id pass, readback and tone mapping: everything but Cycles' sampling and denoising) is
reported as a ratio of the path-tracing time measured on the same images, because the machine
is shared and absolute times are noisy. `synth.layers.build_maps` is not counted: it is the
caller's work (see benchmarks/maps_speed.py).

Variants render the same specs with other render settings: `scene` as the scene says,
`denoised` and `raw` with OpenImageDenoise on and off, `adaptive` with the scene's denoising and
Cycles adaptive sampling at threshold 0.01. They are interleaved image by image, so a change in
the machine's load hits each alike, and each is given as a ratio of the first one's time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import replace

from synth.blender import BlenderRenderer, blender_version
from synth.config import load_config
from synth.errors import DefectsynthError
from synth.layers import build_maps
from synth.scene import sample_scene, total_images

SETTINGS = "256x16,256x64,512x16,512x64"  # resolution x samples
# Changes of each variant to the scene's render settings; adaptive: Cycles' own default threshold.
VARIANTS: dict[str, dict[str, object]] = {
    "scene": {},
    "denoised": {"denoise": True},
    "raw": {"denoise": False},
    "adaptive": {"adaptive_threshold": 0.01},
}


def variants(text: str) -> list[str]:
    names = text.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="scenes/leather.yaml")
    parser.add_argument("--images", type=int, default=3, help="images per setting")
    parser.add_argument("--device", choices=["cpu", "cuda", "optix", "hip"], default="cpu")
    parser.add_argument("--settings", default=SETTINGS, help="comma-separated RESOLUTIONxSAMPLES")
    parser.add_argument(
        "--variants", type=variants, default="scene", help=f"comma-separated: {list(VARIANTS)}"
    )
    args = parser.parse_args()
    settings = [tuple(int(x) for x in item.split("x")) for item in args.settings.split(",")]
    names: list[str] = args.variants

    start = time.perf_counter()
    try:
        renderer = BlenderRenderer(device=args.device)
    except DefectsynthError as error:  # no GPU of that kind: one line
        sys.exit(f"Error: {error}")
    emit(figure="renderer_init_s", value=time.perf_counter() - start, blender=blender_version(),
         device=args.device, gpus=renderer.gpus)  # fmt: skip
    warmed = False
    for resolution, samples in settings:
        overrides = {"camera": {"resolution": [resolution, resolution]}, "render": {"samples": samples}}
        config = load_config(args.scene, overrides)
        specs = [sample_scene(config, i % total_images(config)) for i in range(args.images)]
        if not warmed:  # the first render loads (or compiles) kernels; keep it out of the figures
            tick = time.perf_counter()
            renderer.render(specs[0], build_maps(specs[0]))
            emit(figure="first_image_s", value=time.perf_counter() - tick, resolution=resolution,
                 device=args.device)  # fmt: skip
            warmed = True
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for spec in specs:
            maps = build_maps(spec)
            for name in names:
                changed = replace(spec, render=replace(spec.render, **VARIANTS[name]))
                runs[name].append(renderer.render(changed, maps).timings)
        first = statistics.median(run["total"] for run in runs[names[0]])
        for name in names:
            median = {key: statistics.median(run[key] for run in runs[name]) for key in runs[name][0]}
            path_tracing = sum(run["path_tracing"] for run in runs[name])
            overhead = sum(run["overhead"] for run in runs[name])
            common = {"scene": config.name, "resolution": resolution, "samples": samples,
                      "device": args.device, "variant": name}  # fmt: skip
            emit(figure="seconds_per_image", value=median["total"], **common, images=len(specs),
                 over_first_variant=round(median["total"] / first, 3),
                 each_s=[round(run["total"], 2) for run in runs[name]])  # fmt: skip
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
