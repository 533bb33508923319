"""Render a scene config into a canonical dataset: sample → maps → render → labels → write.

Resumable (finished samples are skipped), shardable (`shard=(i, n)` renders every n-th image)
and parallel (`workers=k` runs k renderer processes, each a shard, then merges).
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from synth.annotations import Annotations, ClassInfo
from synth.appearance import apply_appearance
from synth.config import SPLITS, SceneConfig, SplitConfig
from synth.errors import ConfigError, DefectsynthError
from synth.layers import build_maps
from synth.photo import check_photo
from synth.raster import RasterRenderer
from synth.rendering import Renderer, RenderResult
from synth.scene import SceneSpec, class_table, sample_scene, shard_range, split_of
from synth.sensor import apply_sensor
from synth.writers import DatasetWriter

RendererName = Literal["cycles", "raster"]
Device = Literal["cpu", "cuda", "optix", "hip"]  # "cpu", or the kind of GPU Cycles renders on


def make_renderer(name: RendererName, threads: int = 0, device: Device = "cpu") -> Renderer:
    """A renderer of that name; `threads` caps Cycles' threads (0: all cores), e.g. to the
    CPUs a Ray actor declared. The raster view runs on one thread anyway, and only on the CPU."""
    check_device(name, device, local=False)
    if name == "raster":
        return RasterRenderer()
    from synth.blender import BlenderRenderer  # bpy is imported only here

    return BlenderRenderer(threads, device)


def check_device(renderer: RendererName, device: Device, local: bool = True) -> None:
    """Refuse a GPU `device` the renderer cannot use: the raster view's, and with `local`, a
    kind of GPU this machine's Cycles does not find (it imports bpy only for a GPU)."""
    if device == "cpu":
        return
    if renderer == "raster":
        raise ConfigError(f"--device {device}: the raster renderer runs on the CPU only (give --device cpu)")
    if local:
        from synth.blender import gpu_setup

        gpu_setup(device)


# The config's own cap on a split's image count; `--n` gets the same, so no split exceeds it.
MAX_IMAGES: int = next(m.le for m in SplitConfig.model_fields["count"].metadata if hasattr(m, "le"))


def scaled_config(config: SceneConfig, n: int | None) -> SceneConfig:
    """The config with its split counts scaled to `n` images in total (each used split ≥ 1)."""
    if n is None:
        return config
    if not 1 <= n <= MAX_IMAGES:
        raise ConfigError(f"--n must be at least 1 and at most {MAX_IMAGES} (the config's cap), got {n}")
    counts = config.split_counts()
    total = sum(counts.values())
    if total == 0:
        raise ConfigError(f"--n: {config.name} has no images in any split to scale")
    used = [s for s, c in counts.items() if c]
    scaled = {s: max(1, round(counts[s] * n / total)) for s in used}
    scaled[max(used, key=lambda s: scaled[s])] += n - sum(scaled.values())
    splits = {s: config.splits[s].model_copy(update={"count": c}) for s, c in scaled.items()}  # type: ignore[index]
    return config.model_copy(update={"splits": splits})


def dataset_classes(config: SceneConfig) -> tuple[ClassInfo, ...]:
    return tuple(ClassInfo(c.id, c.name, c.kind) for c in class_table(config))  # type: ignore[arg-type]


def versions() -> dict[str, str]:
    names = ("defectsynth", "bpy", "numpy", "noise")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def annotate(spec: SceneSpec, result: RenderResult, classes: tuple[ClassInfo, ...]) -> Annotations:
    """Labels from the rendered id pass: exactly the instances the camera sees."""
    visible = set(np.unique(result.instance_ids).tolist()) - {0}
    instance_classes = {k: v for k, v in spec.instance_classes.items() if k in visible}
    return Annotations.from_instance_map(
        result.instance_ids, instance_classes, classes, spec.camera.mm_per_px
    )


@dataclass
class RenderSummary:
    rendered: int
    skipped: int
    seconds: float
    counts: dict[str, int]


def as_recorded(rgb: np.ndarray, spec: SceneSpec, setup: int = 0) -> np.ndarray:
    """A view's clean render as the dataset stores it: through the sensor, then matched to the
    real domain (both optional, both leave the labels alone). Set-up k of a burst is another
    exposure, so its sensor noise is drawn afresh (seed + k); set-up 0 is the sample's own."""
    sensor = spec.sensor
    if sensor is not None and setup:
        sensor = replace(sensor, noise_seed=(sensor.noise_seed + setup) % 2**32)
    return apply_appearance(apply_sensor(rgb, sensor), spec.appearance)


@dataclass
class RenderedSample:
    """One sample as the dataset stores it, made by `render_sample`: a local render loop writes
    it at once, a Ray actor sends it to the driver, which writes it (synth.distributed)."""

    split: str
    image_id: str
    image: np.ndarray
    annotations: Annotations
    spec: dict[str, Any]
    bursts: dict[str, np.ndarray] = field(default_factory=dict)  # set-up name -> image

    def write(self, writer: DatasetWriter) -> None:
        writer.write(self.split, self.image_id, self.image, self.annotations, self.spec, bursts=self.bursts)


def render_sample(
    view: Renderer, config: SceneConfig, index: int, classes: tuple[ClassInfo, ...]
) -> RenderedSample:
    """Sample, render and label image `index`: the one per-sample path of every render loop."""
    spec = sample_scene(config, index)
    result = view.render(spec, build_maps(spec))
    bursts = {
        b.name: as_recorded(rgb, spec, k)
        for k, (b, rgb) in enumerate(zip(spec.bursts, result.bursts, strict=True))
    }
    rgb = next(iter(bursts.values())) if bursts else as_recorded(result.rgb, spec)
    labels = annotate(spec, result, classes)
    return RenderedSample(spec.split, spec.image_id, rgb, labels, spec.to_dict(), bursts)


def is_finished(writer: DatasetWriter, config: SceneConfig, index: int) -> bool:
    """Whether image `index` is already in the dataset (a resume skips it)."""
    return writer.has(split_of(config, index), f"{index:06d}")


def render_source(
    config: SceneConfig, scene_path: str, renderer: RendererName, device: Device = "cpu"
) -> dict[str, Any]:
    """What a dataset records it was made with; a resume must match it (DatasetWriter).

    The GPU kind is recorded as `device` (left out for the CPU, so datasets rendered before
    devices could be chosen still resume). Cycles' noise differs between CPU and GPU, so a
    dataset is rendered on one kind of device: a resume on another is refused.
    """
    source = {
        "scene": scene_path,
        "config_name": config.name,
        "config_hash": config.digest(),
        "seed": config.seed,
        "renderer": renderer,
        "config": config.dump(),
        "versions": versions(),
    }
    if device != "cpu":
        source["device"] = device
    return source


def render_dataset(
    config: SceneConfig,
    out: str | Path,
    *,
    scene_path: str = "",
    renderer: RendererName = "cycles",
    shard: tuple[int, int] = (0, 1),
    finalize: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    wait: bool = False,
    device: Device = "cpu",
) -> RenderSummary:
    """Render (the shard of) a config into `out`; already finished samples are skipped.

    `out` must be empty, or a dataset made with the same parameters (a resume, another shard),
    unless `overwrite` replaces it. While another run writes the same shard this refuses, or
    with `wait` waits for it (and then finds its samples finished). `device` is where Cycles
    renders (see `render_source`), checked before `out` is touched.
    """
    check_device(renderer, device)
    check_photo(config, renderer)
    indices = shard_range(config, *shard)
    source = render_source(config, scene_path, renderer, device)
    with DatasetWriter(out, dataset_classes(config), source, overwrite, shard, wait) as writer:
        return _render_shard(writer, config, renderer, indices, finalize, progress, device)


def _render_shard(
    writer: DatasetWriter,
    config: SceneConfig,
    renderer: RendererName,
    indices: range,
    finalize: bool,
    progress: bool,
    device: Device = "cpu",
) -> RenderSummary:
    start = time.perf_counter()
    view: Renderer | None = None  # made at the first unfinished sample: a finished resume starts no Blender
    rendered = 0
    for index in tqdm(indices, desc=f"render {config.name}", unit="img", disable=not progress):
        if is_finished(writer, config, index):
            continue
        if view is None:
            view = make_renderer(renderer, device=device)
        render_sample(view, config, index, writer.classes).write(writer)
        rendered += 1
    counts = writer.finalize() if finalize else {}
    return RenderSummary(rendered, len(indices) - rendered, time.perf_counter() - start, counts)


def render_parallel(
    config: SceneConfig,
    out: str | Path,
    scene_path: str,
    n: int | None,
    renderer: RendererName,
    workers: int,
    overwrite: bool = False,
    device: Device = "cpu",
) -> RenderSummary:
    """Run `workers` renderer processes (one Blender each), one shard apiece, then merge.

    This process holds the whole dataset's lock (shard 0/1) meanwhile, so no second run can
    start; the workers lock their own shards. SIGTERM or Ctrl-C here stops the workers too.
    With a GPU `device` every worker renders on all the GPUs of that kind.
    """
    start = time.perf_counter()
    check_device(renderer, device)
    source = render_source(config, scene_path, renderer, device)
    with DatasetWriter(out, dataset_classes(config), source, overwrite) as writer:
        before = sum(writer.finished(s) for s in SPLITS)
        command = [
            sys.executable,
            "-m",
            "synth.cli",
            "render",
            scene_path,
            "--out",
            str(out),
            "--renderer",
            renderer,
            "--device",
            device,
            "--no-finalize",
            "--quiet",
        ]
        if n is not None:
            command += ["--n", str(n)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs: list[subprocess.Popen] = []
        with sigterm_unwinds():
            try:
                for i in range(workers):
                    # Own session: a Ctrl-C reaches only this process, which stops the workers.
                    shard = [*command, "--shard", f"{i}/{workers}"]
                    procs.append(subprocess.Popen(shard, env=env, start_new_session=True))
                _show_progress(procs, writer, config, workers, before)
            finally:
                _stop(procs)
        failed = [i for i, p in enumerate(procs) if p.returncode]
        if failed:
            raise DefectsynthError(
                f"{out}: render workers {failed} failed (their errors are above); "
                "run the same command again to resume"
            )
        counts = _render_shard(
            writer, config, renderer, shard_range(config), finalize=True, progress=False, device=device
        ).counts
    return RenderSummary(sum(counts.values()) - before, before, time.perf_counter() - start, counts)


def _show_progress(
    procs: list[subprocess.Popen], writer: DatasetWriter, config: SceneConfig, workers: int, before: int
) -> None:
    """A progress bar over the finished samples, until every worker has exited."""
    total = sum(config.split_counts().values())
    with tqdm(
        total=total, initial=before, desc=f"render {config.name} ({workers} workers)", unit="img"
    ) as bar:
        while any(p.poll() is None for p in procs):
            time.sleep(1.0)
            bar.update(sum(writer.finished(s) for s in SPLITS) - bar.n)


def _stop(procs: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    """Stop workers still running: SIGINT first (they remove their temp files), then SIGKILL."""
    running = [p for p in procs if p.poll() is None]
    for p in running:
        p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for p in running:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into SystemExit meanwhile, so `finally` blocks run (by default it kills)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
