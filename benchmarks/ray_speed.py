"""Ray rendering against local workers: images/s, Ray's per-sample overhead, scaling 1 -> 2.

    nice .venv/bin/python benchmarks/ray_speed.py [--scene scenes/metal_tile.yaml] [--size 96]
        [--samples 16] [--images 10] [--rounds 2] [--out runs/ray_speed]

Renders the same images of one small Cycles scene with `synth render --workers 1` and
`--workers 2` (command lines of their own, as a user runs them) and with synth.distributed's
`render_on_ray` (what `--ray` runs) with 1 and 2 actors, each into a fresh folder, `--rounds`
times in alternating order (local 1, Ray 1, local 2, Ray 2; then backwards), so that a shared
machine's load hits both alike. A local worker renders with as many Cycles threads as there
are cores, so every actor reserves that many CPUs (its thread count) of a local Ray instance
started as `--ray` starts one (workers at this process's priority) but with twice as many
logical CPUs: on a loaded machine CPU time is shared per thread and by priority, and unequal
thread counts or priorities would measure the OS scheduler, not Ray.

images/s is the steady rate: (images - workers) / (last sample's meta time - first one's), so
start-up (Ray, Blender, Cycles' kernels) is left out alike for all runs; it is printed beside.
Ray's per-sample overhead is measured twice: from the rates (1 actor against 1 worker), and
directly, with an actor that returns an already rendered sample through the same driver loop
(dispatch, transfer and the driver's write: at 512² this is also the most images/s one driver
takes), as a share of the measured render time. All datasets are checked to be byte-identical.

Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import ray
import yaml

from synth import distributed
from synth.config import load_config
from synth.render import scaled_config

ROOT = Path(__file__).resolve().parents[1]
SYNTH = [sys.executable, "-m", "synth.cli"]
RUNS = (("local", 1), ("ray", 1), ("local", 2), ("ray", 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default=str(ROOT / "scenes" / "metal_tile.yaml"))
    parser.add_argument("--size", type=int, default=96, help="image width and height")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ray_speed")
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    doc = yaml.safe_load(Path(args.scene).read_text())
    doc["camera"]["resolution"] = [args.size, args.size]
    doc["render"]["samples"] = args.samples
    scene = args.out / "scene.yaml"
    scene.write_text(yaml.safe_dump(doc))
    config = scaled_config(load_config(scene), args.images)
    common = {
        "scene": Path(args.scene).stem,
        "size": args.size,
        "samples": args.samples,
        "images": args.images,
    }
    cores = os.cpu_count() or 1

    start = time.time()
    ray.init(num_cpus=2 * cores, log_to_driver=False, logging_level="WARNING", **distributed.LOCAL_INIT)
    emit(figure="ray_init_s", value=time.time() - start, logical_cpus=2 * cores)
    rates: dict[tuple[str, int], list[float]] = {run: [] for run in RUNS}
    digests = set()
    for number in range(args.rounds):
        for name, workers in RUNS if number % 2 == 0 else RUNS[::-1]:
            out = args.out / f"{name}{workers}-{number}"
            start = time.time()
            if name == "local":
                command = [*SYNTH, "render", str(scene), "--out", str(out), "--n", str(args.images)]
                subprocess.run([*command, "--quiet", "--workers", str(workers)], check=True)
            else:
                options = distributed.RayOptions(actors=workers, cpus=cores)
                distributed.render_on_ray(config, out, options, scene_path=str(scene), progress=False)
            wall = time.time() - start
            finished = sorted(p.stat().st_mtime for p in (out / "meta").rglob("*.json"))
            rate = (len(finished) - workers) / (finished[-1] - finished[0])
            rates[name, workers].append(rate)
            digests.add(dataset_digest(out))
            emit(figure="images_per_s", value=rate, run=name, workers=workers, round=number, wall_s=wall,
                 startup_s=finished[0] - start, **common)  # fmt: skip
    median = {run: statistics.median(r) for run, r in rates.items()}
    for workers in (1, 2):
        ratios = [r / loc for r, loc in zip(rates["ray", workers], rates["local", workers], strict=True)]
        emit(figure="ray_over_local", value=median["ray", workers] / median["local", workers],
             workers=workers, per_round=ratios, **common)  # fmt: skip
    for name in ("local", "ray"):
        emit(figure="scaling_1_to_2", value=median[name, 2] / (2 * median[name, 1]), run=name, **common)
    emit(figure="overhead_share_from_rates", value=median["local", 1] / median["ray", 1] - 1, **common)
    emit(figure="byte_identical_runs", value=len(digests) == 1, runs=sum(len(r) for r in rates.values()))

    render_s = 1 / median["local", 1]
    for size in sorted({args.size, 512}):
        per_sample, write = driver_loop_seconds(doc, size, args.out / f"echo{size}")
        emit(figure="ray_seconds_per_sample_without_rendering", value=per_sample, size=size, write_s=write)
        if size == args.size:
            emit(figure="overhead_share_measured", value=per_sample / render_s, render_s=render_s,
                 without_the_write=(per_sample - write) / render_s, **common)  # fmt: skip
    ray.shutdown()


def dataset_digest(root: Path) -> str:
    """One hash over every sample file and the COCO files (dataset.yaml names its folder)."""
    digest = hashlib.sha256()
    for path in sorted(p for kind in ("images", "masks", "instances", "labels", "meta", "coco")
                       for p in (root / kind).rglob("*") if p.is_file()):  # fmt: skip
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def driver_loop_seconds(doc: dict, size: int, out: Path, images: int = 200) -> tuple[float, float]:
    """Seconds per sample of synth.distributed's driver loop with one actor that does not
    render: it returns one sample (rendered once, raster, at `size`) for every index it is sent,
    so what is timed is Ray's dispatch and transfer and the driver's write; and of the write
    alone, which a local render does too."""
    from synth.config import parse_config
    from synth.render import dataset_classes, make_renderer, render_sample, render_source
    from synth.writers import DatasetWriter

    doc = {**doc, "camera": {**doc["camera"], "resolution": [size, size]}}
    config = scaled_config(parse_config(doc), images)
    sample = render_sample(make_renderer("raster"), config, 0, dataset_classes(config))

    @ray.remote(num_cpus=1)
    class Echo:
        def render(self, index: int) -> tuple:
            return sample, ("echo", os.getpid())

    actor = Echo.remote()
    ray.get(actor.render.remote(0))  # started
    with DatasetWriter(out, dataset_classes(config), render_source(config, "", "raster")) as writer:
        start = time.perf_counter()
        distributed._render(writer, config, range(images), 0, [actor], distributed.RayOptions(), False)
        seconds = (time.perf_counter() - start) / images
        start = time.perf_counter()
        for _ in range(images):
            sample.write(writer)
        write = (time.perf_counter() - start) / images
    ray.kill(actor)
    return seconds, write


def emit(**fields: object) -> None:
    value = fields.get("value")
    if isinstance(value, float):
        fields["value"] = round(value, 4)
    for key, item in fields.items():
        if isinstance(item, float):
            fields[key] = round(item, 3)
    print(json.dumps(fields), flush=True)


if __name__ == "__main__":
    main()
