"""Sequential PatchCore vs anomalib's Patchcore on the real magnetic tile images.

Same backbone weights, layers, pooling, image size (256²) and coreset size. Trained on
MT_Free minus every 5th image (by sorted name); tested on those held-out good images and
all defective images, metrics at each image's own resolution. Each engine runs in its own
process; one JSON line per engine.

    .venv/bin/python benchmarks/patchcore_magnetic_tile.py [--size 2048] [--epochs 3]
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
import torch.nn.functional as F  # noqa: E402, N812
from patchcore_common import (  # noqa: E402
    anomalib_patchcore,
    emit,
    fit_anomalib,
    metrics,
    normalise,
    peak_rss_mb,
    run_child,
)

from synth.images import read_image  # noqa: E402
from train.patchcore import PatchCoreConfig, pretrain  # noqa: E402
from train.patchcore.data import to_tensor  # noqa: E402

ROOT = Path(__file__).resolve().parents[2] / "shared" / "real" / "magnetic_tile"
PATCHES_PER_IMAGE = 32 * 32  # 256² input, stride-8 layer
LIMIT = int(os.environ.get("PATCHCORE_BENCH_EVERY", "0"))  # >0: smoke run on a subset


def split(root: Path, limit: int = 0) -> tuple[list[Path], list[tuple[Path, Path | None, int]]]:
    """Train images, and test (image, mask or None, label) triples; `limit` > 0 for a smoke
    run on every limit-th image."""
    free = sorted((root / "MT_Free" / "Imgs").glob("*.jpg"))
    train = [p for i, p in enumerate(free) if i % 5]
    test = [(p, None, 0) for i, p in enumerate(free) if i % 5 == 0]
    for folder in sorted(root.glob("MT_*")):
        if folder.name != "MT_Free":
            test += [(p, p.with_suffix(".png"), 1) for p in sorted((folder / "Imgs").glob("*.jpg"))]
    step = max(1, limit)
    return train[::step], test[::step]


def load_test(test) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    images = [read_image(p) for p, _, _ in test]
    masks = [
        (np.asarray(read_image(m))[..., 0] >= 128) if m else np.zeros(i.shape[:2], bool)
        for i, (_, m, _) in zip(images, test, strict=True)
    ]
    return images, masks, [label for _, _, label in test]


def run_ours(config: PatchCoreConfig) -> dict:
    train, test = split(ROOT, LIMIT)
    start = time.perf_counter()
    coreset = pretrain(train, config)
    fit_s = time.perf_counter() - start
    images, masks, labels = load_test(test)
    maps, scores = coreset.predict(images)
    return {"fit_s": round(fit_s, 1), "epochs": coreset.epochs, **metrics(maps, masks, labels, scores)}


def run_anomalib(config: PatchCoreConfig) -> dict:
    train, test = split(ROOT, LIMIT)
    start = time.perf_counter()
    module = anomalib_patchcore(config, config.coreset_size / (len(train) * PATCHES_PER_IMAGE))
    batches = (
        torch.stack([to_tensor(read_image(p), config.image_size) for p in train[i : i + 8]])
        for i in range(0, len(train), 8)
    )
    fit_anomalib(module, batches, config)
    fit_s = time.perf_counter() - start
    images, masks, labels = load_test(test)
    maps, scores = [], []
    with torch.no_grad():
        for image in images:
            x = to_tensor(image, config.image_size)[None]
            out = module.model(normalise(x, config))
            full = F.interpolate(out.anomaly_map, size=image.shape[:2], mode="bilinear")
            maps.append(full[0, 0].numpy())
            scores.append(float(out.pred_score))
    return {
        "fit_s": round(fit_s, 1),
        "coreset": len(module.model.memory_bank),
        **metrics(maps, masks, labels, np.array(scores)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--augmentations", type=int, default=1)
    parser.add_argument("--engines", default="ours,anomalib")
    parser.add_argument("--child", choices=["ours", "anomalib"])
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = PatchCoreConfig(
        coreset_size=args.size, epochs=args.epochs, augmentations=args.augmentations, holdout=0.0
    )
    if args.child:
        if not ROOT.is_dir():
            sys.exit(f"no magnetic tile data at {ROOT}")
        result = run_ours(config) if args.child == "ours" else run_anomalib(config)
        emit(**result, peak_rss_mb=round(peak_rss_mb()))
        return
    for engine in args.engines.split(","):
        child = [__file__, "--child", engine, "--size", str(args.size), "--epochs", str(args.epochs)]
        child += ["--augmentations", str(args.augmentations)]
        result = run_child(child, args.timeout, env={"MALLOC_MMAP_THRESHOLD_": "1048576"})
        emit(benchmark="magnetic_tile", engine=engine, size=args.size, **result)


if __name__ == "__main__":
    main()
