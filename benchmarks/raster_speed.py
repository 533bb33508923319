"""Raster view speed: seconds per image megapixel for every shipped scene, one core.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/raster_speed.py [--images 3] [--baseline REV] \
        [--photo DIR]

For each scene in scenes/, renders the first `--images` samples with `synth.raster` and prints
one JSON line: the median CPU seconds per image megapixel (of this process, all its threads:
what one core spends, less disturbed than wall time by other work on the machine) of the
render itself (texture, shading, resampling) and of `synth.layers.build_maps` (stains and
defects, shared with Cycles), after one untimed render whose seconds are printed apart (a
process's first render loads the compiled kernels). With `--baseline REV`, the same samples
are rendered by the package as it was at git revision REV (extracted with `git archive`, run in
a child process right before the current one, scene by scene), so the ratio of the two is
measured under the same load; the largest difference between the two views' images (8-bit
levels) is printed beside it. Tile scenes are drawn flat, as experiments and calibration do.
Photo-surface scenes take their photos from `--photo DIR` (a dataset or a folder of good
photos), are left out without it, and are not compared with a baseline.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import threadpoolctl

ROOT = Path(__file__).resolve().parents[1]


def timings(scene: Path, images: int, photo: str | None = None) -> dict:
    """Seconds per image megapixel of build_maps and of the raster render, and the images; a
    photo-surface scene with its photos from `photo`."""
    from synth.config import load_config
    from synth.layers import build_maps
    from synth.raster import RasterRenderer
    from synth.scene import sample_scene

    overrides = {"surface": {"photo": {"source": photo}}} if photo else None
    config, view = load_config(scene, overrides), RasterRenderer()
    start = time.process_time()
    view.render(sample_scene(config, images), build_maps(sample_scene(config, images)))
    first_s = time.process_time() - start  # loads compiled kernels, where there are any
    render_s, maps_s, rgb = [], [], []
    for index in range(images):
        spec = sample_scene(config, index)
        megapixels = spec.camera.width_px * spec.camera.height_px / 1e6
        start = time.process_time()
        maps = build_maps(spec)
        maps_s.append((time.process_time() - start) / megapixels)
        start = time.process_time()
        rgb.append(view.render(spec, maps).rgb)
        render_s.append((time.process_time() - start) / megapixels)
    return {
        "image_px": [spec.camera.width_px, spec.camera.height_px],
        "render_s_per_mp": statistics.median(render_s),
        "build_maps_s_per_mp": statistics.median(maps_s),
        "first_render_s": first_s,
        "rgb": rgb,
    }


def baseline(tree: Path, scene: Path, images: int) -> dict:
    """`timings` run by the package in `tree`, in a child process."""
    out = tree / "timings.npz"
    code = (
        "import sys, numpy as np, threadpoolctl; sys.path.insert(0, sys.argv[1]); "
        "sys.path.insert(0, sys.argv[2]); from raster_speed import timings; "
        "threadpoolctl.threadpool_limits(1); t = timings(sys.argv[3], int(sys.argv[4])); "
        "np.savez(sys.argv[5], *t.pop('rgb'), **{k: np.asarray(v) for k, v in t.items()})"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tree),
            str(Path(__file__).parent),
            str(scene),
            str(images),
            str(out),
        ],
        check=True,
        cwd=tree,
    )
    saved = np.load(out)
    return {
        "render_s_per_mp": float(saved["render_s_per_mp"]),
        "rgb": [saved[f"arr_{i}"] for i in range(images)],
    }


def extracted(revision: str) -> Path:
    """The repository at `revision`, in a temporary folder."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    tree = Path(tempfile.mkdtemp(prefix="raster-baseline-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3, help="samples per scene")
    parser.add_argument("--baseline", default=None, help="git revision to compare with")
    parser.add_argument("--scenes", nargs="*", default=None, help="scene files (default: scenes/*.yaml)")
    parser.add_argument("--photo", default=None, help="the photos of photo-surface scenes")
    args = parser.parse_args()

    scenes = (
        [Path(s).resolve() for s in args.scenes] if args.scenes else sorted((ROOT / "scenes").glob("*.yaml"))
    )
    tree = extracted(args.baseline) if args.baseline else None
    from synth.config import load_config

    for scene in scenes:
        photo = args.photo if load_config(scene).surface.photo else None
        if load_config(scene).surface.photo and not photo:
            print(json.dumps({"scene": scene.stem, "left_out": "a photo surface: give --photo DIR"}))
            continue
        before = baseline(tree, scene, args.images) if tree and photo is None else None
        now = timings(scene, args.images, photo)
        figure = {"scene": scene.stem, "image_px": now["image_px"]}
        figure["render_s_per_mp"] = round(now["render_s_per_mp"], 4)
        figure["build_maps_s_per_mp"] = round(now["build_maps_s_per_mp"], 4)
        figure["first_render_s"] = round(now["first_render_s"], 3)
        if before is not None:
            figure["baseline_render_s_per_mp"] = round(before["render_s_per_mp"], 4)
            figure["speedup"] = round(before["render_s_per_mp"] / now["render_s_per_mp"], 1)
            difference = max(
                int(np.abs(a.astype(int) - b.astype(int)).max())
                for a, b in zip(now["rgb"], before["rgb"], strict=True)
            )
            figure["max_level_difference"] = difference
        print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    with threadpoolctl.threadpool_limits(1):
        sys.exit(main())
