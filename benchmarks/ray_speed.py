"""Ray rendering against local workers: images/s, Ray's per-sample overhead, scaling 1 -> 2.

    nice .venv/bin/python benchmarks/ray_speed.py [--scene scenes/metal_tile.yaml] [--size 96]
        [--samples 16] [--images 8] [--rounds 2] [--out runs/ray_speed]

Renders the same images of one small Cycles scene with `synth render --workers 1` and
`--workers 2` (command lines of their own, as a user runs them) and with synth.distributed's
`render_on_ray` (what `--ray` runs) with 1 and 2 actors, each into a fresh folder, `--rounds`
times in alternating order (RUNS, then backwards), so that a shared machine's load hits all
alike. A local worker renders with as many Cycles threads as there are cores, so the actors
compared with them reserve that many CPUs (their thread count) of a local Ray instance started
as `--ray` starts one (workers at this process's priority) but with twice as many logical CPUs:
on a loaded machine CPU time is shared per thread and by priority, and unequal thread counts or
priorities would measure the OS scheduler, not Ray. Two workers that each use every core
cannot scale on those cores, so scaling from 1 to 2 actors is also measured as Ray runs by
default: one CPU, and one thread, per actor.

images/s is the steady rate: (images - workers) / (last sample's meta time - first one's), so
start-up (Ray, Blender, Cycles' kernels) is left out alike for all runs; it is printed beside.
Ray's per-sample overhead is measured twice: from the rates (1 actor against 1 worker), and
directly, with an actor that returns an already rendered sample through the same driver loop
(dispatch, transfer and the driver's write: at 512² this is also the most images/s one driver
takes), as a share of the measured render time. On a shared machine the rates follow the load;
so the CPU seconds per image of each run's whole process tree (Ray's daemons, actors and driver;
the local command and its workers) over the same steady window are measured too, and Ray's
overhead is also given as its extra CPU time per image, beside the CPU that Ray's daemons take
on a node with nothing to do. All datasets are checked to be byte-identical.

Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import ray
import yaml

from synth import distributed
from synth.config import load_config
from synth.render import scaled_config

ROOT = Path(__file__).resolve().parents[1]
SYNTH = [sys.executable, "-m", "synth.cli"]
CORES = os.cpu_count() or 1
# (how, workers, Cycles threads per worker): local workers use all cores each, and so do the
# actors compared with them; the last two are Ray's default, one CPU and thread per actor.
RUNS = (
    ("local", 1, CORES),
    ("ray", 1, CORES),
    ("local", 2, CORES),
    ("ray", 2, CORES),
    ("ray", 1, 1),
    ("ray", 2, 1),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default=str(ROOT / "scenes" / "metal_tile.yaml"))
    parser.add_argument("--size", type=int, default=96, help="image width and height")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples")
    parser.add_argument("--images", type=int, default=8)
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

    start = time.time()
    ray.init(num_cpus=2 * CORES, log_to_driver=False, logging_level="WARNING", **distributed.LOCAL_INIT)
    emit(figure="ray_init_s", value=time.time() - start, logical_cpus=2 * CORES)
    time.sleep(5)
    with CpuMeter(os.getpid()) as idle:  # Ray's daemons with nothing to do: a cost per node, not per sample
        start = time.time()
        time.sleep(30)
    emit(figure="ray_idle_cores", value=(idle.at(start + 29) - idle.at(start + 1)) / 28)
    rates: dict[tuple[str, int, int], list[float]] = {run: [] for run in RUNS}
    cpu_s: dict[tuple[str, int, int], list[float]] = {run: [] for run in RUNS}
    digests = set()
    for number in range(args.rounds):
        for name, workers, threads in RUNS if number % 2 == 0 else RUNS[::-1]:
            out = args.out / f"{name}{workers}x{threads}-{number}"
            start = time.time()
            if name == "local":
                command = [*SYNTH, "render", str(scene), "--out", str(out), "--n", str(args.images)]
                process = subprocess.Popen([*command, "--quiet", "--workers", str(workers)])
                with CpuMeter(process.pid) as cpu:
                    assert process.wait() == 0
            else:
                options = distributed.RayOptions(actors=workers, cpus=threads)
                with CpuMeter(os.getpid()) as cpu:  # this driver, Ray's daemons and its actors
                    distributed.render_on_ray(config, out, options, scene_path=str(scene), progress=False)
            wall = time.time() - start
            finished = sorted(p.stat().st_mtime for p in (out / "meta").rglob("*.json"))
            rate = (len(finished) - workers) / (finished[-1] - finished[0])
            cpu_per_image = (cpu.at(finished[-1]) - cpu.at(finished[0])) / (len(finished) - workers)
            rates[name, workers, threads].append(rate)
            cpu_s[name, workers, threads].append(cpu_per_image)
            digests.add(dataset_digest(out))
            emit(figure="images_per_s", value=rate, run=name, workers=workers, threads=threads,
                 round=number, wall_s=wall, startup_s=finished[0] - start, cpu_s_per_image=cpu_per_image,
                 **common)  # fmt: skip
    median = {run: statistics.median(r) for run, r in rates.items()}
    for workers in (1, 2):
        on_ray, local = rates["ray", workers, CORES], rates["local", workers, CORES]
        per_round = [r / loc for r, loc in zip(on_ray, local, strict=True)]
        emit(figure="ray_over_local", value=median["ray", workers, CORES] / median["local", workers, CORES],
             workers=workers, per_round=per_round, **common)  # fmt: skip
    for name, threads in (("local", CORES), ("ray", CORES), ("ray", 1)):
        value = median[name, 2, threads] / (2 * median[name, 1, threads])
        emit(figure="scaling_1_to_2", value=value, run=name, threads=threads, **common)
    emit(
        figure="overhead_share_from_rates",
        value=median["local", 1, CORES] / median["ray", 1, CORES] - 1,
        **common,
    )
    cpu = {run: statistics.median(c) for run, c in cpu_s.items()}
    for workers in (1, 2):  # CPU time per image, which a loaded machine's share does not change
        ray_cpu, local_cpu = cpu["ray", workers, CORES], cpu["local", workers, CORES]
        emit(figure="overhead_share_from_cpu_time", value=ray_cpu / local_cpu - 1, workers=workers,
             ray_cpu_s=ray_cpu, local_cpu_s=local_cpu, **common)  # fmt: skip
    emit(figure="byte_identical_runs", value=len(digests) == 1, runs=sum(len(r) for r in rates.values()))

    render_s = 1 / median["local", 1, CORES]
    for size in sorted({args.size, 512}):
        per_sample, write = driver_loop_seconds(doc, size, args.out / f"echo{size}")
        emit(figure="ray_seconds_per_sample_without_rendering", value=per_sample, size=size, write_s=write)
        if size == args.size:
            emit(figure="overhead_share_measured", value=per_sample / render_s, render_s=render_s,
                 without_the_write=(per_sample - write) / render_s, **common)  # fmt: skip
    ray.shutdown()


class CpuMeter:
    """User + system CPU seconds of a process tree (the root and all its descendants, exited
    ones included), sampled every 0.5 s in a thread whose own CPU time is left out."""

    def __init__(self, root: int, interval_s: float = 0.5) -> None:
        self.root, self.interval_s = root, interval_s
        self.samples: list[tuple[float, float]] = []
        self._last: dict[int, float] = {}  # pid -> CPU seconds when last seen
        self._own = 0.0  # the sampler's CPU time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            begin = time.thread_time()
            self._sample()
            self._own += time.thread_time() - begin
            if self._stop.wait(self.interval_s):
                self._sample()
                return

    def _sample(self) -> None:
        parents, cpu = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            cpu[pid] = (int(fields[11]) + int(fields[12])) / self._tick
        tree, grown = {self.root}, True
        while grown:
            more = {p for p, parent in parents.items() if parent in tree} - tree
            tree |= more
            grown = bool(more)
        self._last.update({p: cpu[p] for p in tree if p in cpu})
        own = self._own if self.root == os.getpid() else 0.0
        self.samples.append((time.time(), sum(self._last.values()) - own))

    def at(self, when: float) -> float:
        """The tree's CPU seconds at time `when`, interpolated between samples."""
        times = [t for t, _ in self.samples]
        i = min(max(bisect.bisect_left(times, when), 1), len(times) - 1)
        (t0, c0), (t1, c1) = self.samples[i - 1], self.samples[i]
        return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1


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
