"""Render a scene config into a canonical dataset: sample → maps → render → labels → write.

Resumable (finished samples are skipped), shardable (`shard=(i, n)` renders every n-th image)
and parallel (`workers=k` runs k renderer processes, each a shard, then merges).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from tqdm import tqdm

from synth.annotations import Annotations, ClassInfo
from synth.config import SceneConfig
from synth.layers import SurfaceMaps, build_maps
from synth.raster import RasterRenderer, RenderResult
from synth.scene import SceneSpec, class_table, sample_scene, shard_indices, split_of
from synth.writers import DatasetWriter, read_metas

RendererName = Literal["cycles", "raster"]


class Renderer(Protocol):
    def render(self, spec: SceneSpec, maps: SurfaceMaps) -> RenderResult: ...


def make_renderer(name: RendererName) -> Renderer:
    if name == "raster":
        return RasterRenderer()
    from synth.blender import BlenderRenderer  # bpy is imported only here

    return BlenderRenderer()


def scaled_config(config: SceneConfig, n: int | None) -> SceneConfig:
    """The config with its split counts scaled to `n` images in total (each used split ≥ 1)."""
    if n is None:
        return config
    counts = config.split_counts()
    total = sum(counts.values())
    if n < 1 or total == 0:
        raise ValueError(f"--n must be at least 1, got {n}")
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


def render_dataset(
    config: SceneConfig,
    out: str | Path,
    *,
    scene_path: str = "",
    renderer: RendererName = "cycles",
    shard: tuple[int, int] = (0, 1),
    finalize: bool = True,
    progress: bool = True,
) -> RenderSummary:
    """Render (the shard of) a config into `out`; already finished samples are skipped."""
    classes = dataset_classes(config)
    source = {
        "scene": scene_path,
        "config_name": config.name,
        "config_hash": config.digest(),
        "seed": config.seed,
        "renderer": renderer,
        "config": config.model_dump(mode="json"),
        "versions": versions(),
    }
    writer = DatasetWriter(out, classes, source)
    indices = shard_indices(config, *shard)
    todo = [i for i in indices if not writer.has(split_of(config, i), f"{i:06d}")]
    start = time.perf_counter()
    if todo:
        view = make_renderer(renderer)
        for index in tqdm(todo, desc=f"render {config.name}", unit="img", disable=not progress):
            spec = sample_scene(config, index)
            result = view.render(spec, build_maps(spec))
            writer.write(
                spec.split,
                spec.image_id,
                result.rgb,
                annotate(spec, result, classes),
                spec.to_dict(),
            )
    counts = writer.finalize() if finalize else {}
    return RenderSummary(len(todo), len(indices) - len(todo), time.perf_counter() - start, counts)


def render_parallel(
    config: SceneConfig,
    out: str | Path,
    scene_path: str,
    n: int | None,
    renderer: RendererName,
    workers: int,
) -> RenderSummary:
    """Run `workers` renderer processes (one Blender each), one shard apiece, then merge."""
    start = time.perf_counter()
    DatasetWriter(out, dataset_classes(config), {"scene": scene_path})  # fail early on a class clash
    before = sum(len(read_metas(Path(out), s)) for s in config.split_counts())
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
        "--no-finalize",
        "--quiet",
    ]
    if n is not None:
        command += ["--n", str(n)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([*command, "--shard", f"{i}/{workers}"], env=env) for i in range(workers)]
    total = sum(config.split_counts().values())
    with tqdm(
        total=total, initial=before, desc=f"render {config.name} ({workers} workers)", unit="img"
    ) as bar:
        while any(p.poll() is None for p in procs):
            time.sleep(1.0)
            done = sum(len(read_metas(Path(out), s)) for s in config.split_counts())
            bar.update(done - bar.n)
    failed = [i for i, p in enumerate(procs) if p.returncode]
    if failed:
        raise RuntimeError(f"render workers {failed} failed; run the same command again to resume")
    counts = render_dataset(config, out, scene_path=scene_path, renderer=renderer, progress=False).counts
    return RenderSummary(sum(counts.values()) - before, before, time.perf_counter() - start, counts)
