"""Peak memory and wall time of Sequential PatchCore vs anomalib's Patchcore as data grows.

Same backbone weights, layers, pooling, image size (256²) and coreset size (--coreset points;
for anomalib the matching sampling ratio). One epoch each, no augmentation. The training images
are synthetic random textures written once to --workdir (outside the repository). Each
engine and dataset size runs in its own process; one JSON line per run.

    .venv/bin/python benchmarks/patchcore_memory.py --sizes 50,200,800,3200
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from patchcore_common import (  # noqa: E402
    anomalib_patchcore,
    emit,
    fit_anomalib,
    peak_rss_mb,
    run_child,
)
from PIL import Image  # noqa: E402

from synth.images import read_image  # noqa: E402
from train.patchcore import PatchCoreConfig, pretrain  # noqa: E402
from train.patchcore.data import to_tensor  # noqa: E402

PATCHES_PER_IMAGE = 32 * 32


def texture(index: int, size: int = 256) -> np.ndarray:
    """A random colour texture: a few oriented waves plus smoothed noise, fixed by `index`."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[:size, :size] / size
    grey = np.zeros((size, size))
    for _ in range(3):
        angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(4, 40), rng.uniform(0, 6.3)
        grey += np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    noise = rng.normal(size=(size // 8, size // 8)).repeat(8, 0).repeat(8, 1)
    grey = (grey / 3 + 0.5 * noise) * 40
    colour = rng.uniform(60, 190, 3)
    return (colour + grey[..., None] + rng.normal(0, 6, (size, size, 3))).clip(0, 255).astype(np.uint8)


def textures(workdir: Path, n: int) -> list[Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    paths = [workdir / f"{i:05d}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        if not path.exists():
            Image.fromarray(texture(i)).save(path, quality=92)
    return paths


def run(engine: str, paths: list[Path], config: PatchCoreConfig) -> dict:
    start = time.perf_counter()
    if engine == "ours":
        size = pretrain(paths, config).size
    else:
        ratio = config.coreset_size / (len(paths) * PATCHES_PER_IMAGE)
        module = anomalib_patchcore(config, min(ratio, 1.0))
        batches = (
            torch.stack([to_tensor(read_image(p), config.image_size) for p in paths[i : i + 8]])
            for i in range(0, len(paths), 8)
        )
        fit_anomalib(module, batches, config)
        size = len(module.model.memory_bank)
    return {"fit_s": round(time.perf_counter() - start, 1), "coreset": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,800,3200")
    parser.add_argument("--engines", default="ours,anomalib")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/patchcore_bench_textures"))
    parser.add_argument("--timeout", type=float, default=3600, help="Per run, seconds.")
    parser.add_argument("--coreset", type=int, default=2048, help="Coreset size of both.")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "N"))
    args = parser.parse_args()
    config = PatchCoreConfig(coreset_size=args.coreset, epochs=1, augmentations=0, holdout=0.0)
    if args.child:
        torch.set_num_threads(2)
        engine, n = args.child[0], int(args.child[1])
        result = run(engine, textures(args.workdir, n), config)
        emit(**result, peak_rss_mb=round(peak_rss_mb()))
        return
    for n in map(int, args.sizes.split(",")):
        textures(args.workdir, n)
        for engine in args.engines.split(","):
            child = [__file__, "--child", engine, str(n), "--workdir", str(args.workdir)]
            child += ["--coreset", str(args.coreset)]
            result = run_child(child, args.timeout, env={"MALLOC_MMAP_THRESHOLD_": "1048576"})
            emit(benchmark="memory", engine=engine, images=n, size=args.coreset, **result)


if __name__ == "__main__":
    main()
