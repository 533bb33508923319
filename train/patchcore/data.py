"""Training images: where they come from, how they are read, hashed and augmented."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torchvision.transforms.v2.functional import gaussian_blur

from synth.dataset import Dataset, DatasetError
from synth.images import IMAGE_SUFFIXES, is_image
from train.patchcore.config import PatchCoreError

DataSource = str | Path | Sequence[str | Path]


def _canonical_good_images(root: Path) -> list[Path] | None:
    """Good train images of a canonical dataset (docs/CONTRACTS.md); None if `root` is not one."""
    if not (root / "dataset.json").is_file():
        return None
    try:
        return [s.image_path for s in Dataset(root).samples("train") if s.good]
    except DatasetError as error:
        raise PatchCoreError(str(error)) from None


def list_images(data: DataSource, pattern: str | None = None) -> list[Path]:
    """The training images of `data`: a canonical dataset root (its good train images, read
    through `synth.dataset` only), a folder (its images, recursively, or those matching the
    glob `pattern`) or a list of files.

    A pattern on a canonical dataset is refused: globbing its tree would take masks,
    instance maps, other splits and defective images as "good" training images.
    """
    if isinstance(data, str | Path):
        root = Path(data)
        if not root.exists():
            raise PatchCoreError(f"data not found: {root}")
        canonical = _canonical_good_images(root) if root.is_dir() else None
        if canonical is not None and pattern is not None:
            raise PatchCoreError(
                f"--pattern {pattern!r} applies to plain image folders, but {root} is a canonical "
                "dataset (its good train images are used); leave out --pattern"
            )
        if root.is_file():
            paths = [root]
        elif canonical is not None:
            paths = canonical
        elif pattern is not None:
            paths = sorted(p for p in root.rglob(pattern) if is_image(p))
        else:
            paths = sorted(filter(is_image, root.rglob("*")))
        where = f"{root}" + (f" matching {pattern}" if pattern else "")
    else:
        paths = [Path(p) for p in data]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise PatchCoreError(f"{len(missing)} image files not found, e.g. {missing[0]}")
        where = "the given list"
    if not paths:
        raise PatchCoreError(f"no images found in {where} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return paths


def dataset_hash(paths: Sequence[Path]) -> str:
    """Content hash of a list of images, so a coreset records exactly what it has seen."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def to_tensor(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """RGB uint8 (H, W, 3) or grey (H, W) → float (3, *size) in [0, 1]."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PatchCoreError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(x, size=size, mode="bilinear", antialias=True)[0]


def augment(x: torch.Tensor, seed: int) -> torch.Tensor:
    """A random photometric/geometric variant of an image in [0, 1], fixed by `seed`.

    Variants are fixed per (image, view), so the training data stays a finite set and the
    replacement rule reaches a fixed point (early stop) even with augmentation.
    """
    g = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=g))

    mean = x.mean()
    x = (x - mean) * uniform(0.8, 1.2) + mean + uniform(-0.1, 0.1)
    if uniform(0, 1) < 0.5:
        x = x.flip(-1)
    if uniform(0, 1) < 0.5:
        x = x.flip(-2)
    if uniform(0, 1) < 0.3:
        x = gaussian_blur(x, kernel_size=5, sigma=uniform(0.5, 1.5))
    if uniform(0, 1) < 0.3:
        x = x + torch.randn(x.shape, generator=g) * uniform(0.005, 0.03)
    if uniform(0, 1) < 0.3:
        x = _mask_border(x, side=int(uniform(0, 4)), fraction=uniform(0.02, 0.1))
    return x.clamp(0, 1)


def _mask_border(x: torch.Tensor, side: int, fraction: float) -> torch.Tensor:
    """Black out a strip along one image border, as when a part does not fill the frame."""
    x = x.clone()
    h, w = x.shape[-2:]
    rows, cols = max(1, int(h * fraction)), max(1, int(w * fraction))
    strips = (
        (slice(None), slice(0, rows)),
        (slice(None), slice(h - rows, h)),
        (slice(None), slice(None), slice(0, cols)),
        (slice(None), slice(None), slice(w - cols, w)),
    )
    x[strips[side]] = 0
    return x
