"""Re-score saved PatchCore memories on the magnetic tile test set, without retraining.

Separates the coreset from the scoring: both engines' memories are fitted once and saved
(ours: the coreset file; anomalib: its k-center memory bank), the test features are
extracted once, and each memory is then scored with each patch-map post-processing.
Pixel metrics for every variant come from the same code on same-size maps.

    .venv/bin/python benchmarks/patchcore_rescore.py --fit ours      # then --fit anomalib
    .venv/bin/python benchmarks/patchcore_rescore.py                 # score every variant
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
from patchcore_common import anomalib_patchcore, emit, fit_anomalib, metrics  # noqa: E402
from patchcore_magnetic_tile import PATCHES_PER_IMAGE, ROOT, load_test, split  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torchvision.transforms.v2.functional import gaussian_blur  # noqa: E402

from synth.images import read_image  # noqa: E402
from train.patchcore import PatchCoreConfig, pretrain  # noqa: E402
from train.patchcore.coreset import nearest_distances  # noqa: E402
from train.patchcore.data import to_tensor  # noqa: E402
from train.patchcore.model import patch_features  # noqa: E402

MODES = ("bilinear", "nearest")


def fit(engine: str, config: PatchCoreConfig, cache: Path) -> None:
    train, _ = split(ROOT)
    start = time.perf_counter()
    if engine == "ours":
        pretrain(train, config).save(cache / f"ours-seed{config.seed}.safetensors")
    else:
        module = anomalib_patchcore(config, config.coreset_size / (len(train) * PATCHES_PER_IMAGE))
        batches = (
            torch.stack([to_tensor(read_image(p), config.image_size) for p in train[i : i + 8]])
            for i in range(0, len(train), 8)
        )
        fit_anomalib(module, batches, config)
        bank = module.model.memory_bank.contiguous()
        save_file({"points": bank}, cache / f"anomalib-seed{config.seed}.safetensors")
    emit(fit=engine, fit_s=round(time.perf_counter() - start, 1))


def test_features(config: PatchCoreConfig, images: list[np.ndarray], cache: Path) -> torch.Tensor:
    """(N, C, h, w) patch features of the test images, extracted once and cached."""
    path = cache / "test_features.pt"
    if not path.is_file():
        model = patch_features(config)
        x = [to_tensor(image, config.image_size) for image in images]
        torch.save(torch.cat([model(torch.stack(x[i : i + 8])) for i in range(0, len(x), 8)]), path)
    return torch.load(path)


def patch_scores(features: torch.Tensor, points: torch.Tensor, config: PatchCoreConfig) -> torch.Tensor:
    """(N, C, h, w) features → (N, 1, h, w) distances to the nearest memory point."""
    n, _, h, w = features.shape
    patches = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    return nearest_distances(patches, points, config.chunk_size).view(n, 1, h, w)


def to_maps(scores: torch.Tensor, config: PatchCoreConfig, mode: str) -> torch.Tensor:
    """Patch maps upsampled by `mode` to the input size, then Gaussian-blurred as anomalib."""
    maps = F.interpolate(scores, size=config.image_size, mode=mode)
    kernel = 2 * int(4 * config.sigma + 0.5) + 1
    return gaussian_blur(maps, kernel_size=kernel, sigma=config.sigma)[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", choices=["ours", "anomalib"])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/patchcore_magnetic_tile"))
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = PatchCoreConfig(
        coreset_size=args.size, epochs=args.epochs, augmentations=0, holdout=0.0, seed=args.seed
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.fit:
        fit(args.fit, config, args.cache)
        return
    _, test = split(ROOT)
    images, masks, labels = load_test(test)
    features = test_features(config, images, args.cache)
    good = torch.tensor(labels) == 0
    for path in sorted(args.cache.glob("*.safetensors")):
        scores = patch_scores(features, load_file(path)["points"], config)
        good_patches = scores[good].ravel()
        spread = {
            "good_patch_mean": round(float(good_patches.mean()), 3),
            "good_patch_p99": round(float(good_patches.quantile(0.99)), 3),
        }
        for mode in MODES:
            maps = [
                F.interpolate(m[None, None], size=image.shape[:2], mode="bilinear")[0, 0].numpy()
                for m, image in zip(to_maps(scores, config, mode), images, strict=True)
            ]
            image_scores = np.array([m.max() for m in maps])
            emit(memory=path.stem, upsample=mode, **spread, **metrics(maps, masks, labels, image_scores))


if __name__ == "__main__":
    main()
