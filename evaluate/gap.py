"""The synthetic-to-real gap, measured where PatchCore lives: its patch-feature space.

`evaluate gap --synthetic DATASET --real DATASET` gives two numbers and a picture:
- MMD²: unbiased kernel MMD² (KID's cubic polynomial kernel) between patch features of the
  synthetic and the real good images, averaged over seeded subsets of fixed size;
- coverage ratio: held-out real patches' median distance to a coreset of the synthetic images
  over their median distance to a coreset of the other real images (1.0 = the renders explain
  real surfaces as well as real surfaces do; larger = worse);
- a coverage map: held-out real images with the patches the synthetic coreset does not explain
  in red, beside their nearest synthetic images: what the scene is missing.

torch and the backbone are imported inside the functions that use them, so `evaluate --help`
stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import click
import cv2
import numpy as np
from pydantic import Field
from tqdm import tqdm

from evaluate.report import Section, fmt, undefined, write_html
from synth.dataset import Dataset, Sample
from synth.errors import DataError
from synth.images import read_image
from synth.outputs import OutputPath
from synth.writers import atomic_write_json, atomic_write_png
from train.options import image_size
from train.settings import Settings

if TYPE_CHECKING:
    from train.patchcore import PatchCoreConfig

# A held-out real patch is "unexplained" when the synthetic coreset is farther from it than the
# real coreset is from this share of the held-out real patches.
EXPLAINED_QUANTILE = 0.95
CELL_PX = 160  # size of one image in the coverage map
LABEL_PX = 14


class GapSettings(Settings):
    """How the gap is measured; the same settings make the same numbers (everything is seeded)."""

    what: ClassVar[str] = "gap"

    samples: int = Field(1000, ge=2)  # patches per side in one MMD² subset
    subsets: int = Field(10, ge=1)
    coreset_size: int = Field(1024, ge=2)
    seed: int = 0
    split: str = "train"
    with_defective: bool = False  # real images with defects serve too, their defect patches left out
    rows: int = Field(4, ge=1)  # real images in the coverage map
    neighbours: int = Field(3, ge=0)  # nearest synthetic images beside each


@dataclass
class PatchSet:
    """Patch features of a set of images and which of their patches may be used."""

    paths: list[Path]
    features: np.ndarray  # (images, h * w, dim) float32, patches in raster order
    usable: np.ndarray  # (images, h * w) bool: False under a defect mask
    grid: tuple[int, int]

    def patches(self, images: np.ndarray | None = None) -> np.ndarray:
        """The usable patches of the chosen images (all by default), (n, dim)."""
        chosen = np.arange(len(self.paths)) if images is None else images
        return self.features[chosen][self.usable[chosen]]

    def descriptors(self) -> np.ndarray:
        """One vector per image, the mean of its usable patches: to find nearest images."""
        weights = self.usable[..., None].astype(np.float32)
        return (self.features * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1)


@dataclass
class Coverage:
    ratio: float
    median_synthetic: float
    median_real: float
    threshold: float  # distance above which a held-out patch counts as unexplained
    unexplained_share: float
    heldout: np.ndarray  # indices of the held-out real images
    real_coreset_images: int
    synthetic_distances: np.ndarray  # (held-out images, h * w); NaN where not usable


def gap_images(
    data: Path, split: str = "train", with_defective: bool = False
) -> list[tuple[Path, Sample | None]]:
    """The images the gap is measured on: a canonical dataset's good images of `split` (and its
    defective ones with `with_defective`, whose masks then leave patches out), or every image
    of a plain folder, all taken as good."""
    data = Path(data)
    if not data.exists():
        raise DataError(f"{data}: not found")
    if not (data / "dataset.json").is_file():
        from train.patchcore import list_images

        return [(path, None) for path in list_images(data)]
    samples = Dataset(data).samples(split)
    chosen = [(s.image_path, s) for s in samples if s.good or with_defective]
    if not any(s.good for s in samples) and not (with_defective and chosen):
        defective = sum(not s.good for s in samples)
        hint = " (pass --with-defective to use them with their defect patches left out)" if defective else ""
        raise DataError(
            f"{data}: no usable good images in its {split!r} split ({len(samples)} samples, "
            f"{defective} with defects){hint}"
        )
    return chosen


def _usable_patches(sample: Sample | None, image_shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Patches touching no labelled pixel (defect or impurity) of the sample's mask."""
    if sample is None or sample.good:
        return np.ones(grid[0] * grid[1], dtype=bool)
    mask = sample.mask()
    if mask.shape[:2] != image_shape:
        raise DataError(f"{sample.mask_path}: mask {mask.shape[:2]} does not match its image {image_shape}")
    labelled = mask.reshape(*mask.shape[:2], -1).max(axis=2) > 0
    # INTER_AREA gives each patch its share of labelled pixels: any share leaves it out.
    share = cv2.resize(labelled.astype(np.float32), grid[::-1], interpolation=cv2.INTER_AREA)
    return (share <= 0).ravel()


def load_patches(data: Path, config: PatchCoreConfig, settings: GapSettings, desc: str) -> PatchSet:
    """Patch features of the gap images of `data`, computed by the PatchCore backbone."""
    items = gap_images(data, settings.split, settings.with_defective)
    images = (read_image(path) for path, _ in items)
    patches = image_patches(images, [p for p, _ in items], config, desc, [s for _, s in items])
    if not patches.usable.any():
        raise DataError(f"{data}: every patch of its {len(items)} images lies under a defect mask")
    return patches


def image_patches(
    images: Iterable[np.ndarray],
    paths: list[Path],
    config: PatchCoreConfig,
    desc: str,
    samples: list[Sample | None] | None = None,
    progress: bool = True,
) -> PatchSet:
    """Patch features of images given as arrays (`paths` name them; renders held in memory
    for `synth calibrate` name their would-be files), with the patches under each sample's
    labelled pixels left out."""
    import torch

    from train.patchcore.data import to_tensor
    from train.patchcore.model import patch_features

    samples = samples or [None] * len(paths)
    model = patch_features(config)
    features, usable, grid = [], [], (0, 0)
    pending = iter(images)
    starts = range(0, len(paths), config.batch_size)
    for start in tqdm(starts, desc=f"features {desc}", unit="batch", disable=not progress):
        batch = [next(pending) for _ in range(min(config.batch_size, len(paths) - start))]
        x = torch.stack([to_tensor(image, config.image_size) for image in batch]).to(config.device)
        maps = model(x).cpu()
        grid = tuple(maps.shape[-2:])
        features.append(maps.permute(0, 2, 3, 1).reshape(len(batch), -1, maps.shape[1]).numpy())
        chosen = samples[start : start + len(batch)]
        usable += [_usable_patches(s, i.shape[:2], grid) for s, i in zip(chosen, batch, strict=True)]
    return PatchSet(list(paths), np.concatenate(features), np.stack(usable), grid)


def mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between samples x (m, d) and y (n, d) with KID's kernel (a·b / d + 1)³:
    the diagonals of the within-sample kernel matrices are left out, so the estimate has
    expectation 0 for one distribution and can come out negative."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise DataError(f"MMD² needs at least 2 patches on each side, got {m} and {n}")
    x, y = x.astype(np.float64), y.astype(np.float64)
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def mmd2_subsets(x: np.ndarray, y: np.ndarray, samples: int, subsets: int, seed: int) -> tuple[float, float]:
    """Mean and standard deviation of MMD² over seeded subsets of `samples` patches per side
    (as KID does): fixed sizes make scores comparable between datasets of different sizes. A
    side with fewer patches gives all of them to every subset; when both do, or there is one
    subset, the subsets do not differ and the deviation is undefined (NaN), not 0."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), min(samples, len(x)), replace=False)]
        b = y[rng.choice(len(y), min(samples, len(y)), replace=False)]
        values.append(mmd2(a, b))
    alike = subsets < 2 or samples >= max(len(x), len(y))
    return float(np.mean(values)), float("nan") if alike else float(np.std(values))


def build_coreset(
    patches: PatchSet, images: np.ndarray, size: int, seed: int, desc: str, progress: bool = True
) -> np.ndarray:
    """A sequential coreset of the usable patches of `images`, fed image by image in a seeded
    order (as `train.patchcore.pretrain` does, one epoch)."""
    import torch

    from train.patchcore import SequentialCoreset

    order = np.random.default_rng(seed).permutation(images)
    state = SequentialCoreset(size, patches.features.shape[2])
    for index in tqdm(order, desc=f"coreset {desc}", unit="img", disable=not progress):
        state.add(torch.from_numpy(patches.features[index][patches.usable[index]]))
    return state.stored().numpy().copy()


def _nearest(x: np.ndarray, points: np.ndarray) -> np.ndarray:
    import torch

    from train.patchcore.coreset import nearest_distances

    return nearest_distances(torch.from_numpy(x), torch.from_numpy(points), 4096).numpy()


@dataclass
class RealReference:
    """The real side of the coverage ratio: half of the real images as a coreset, the other
    half held out with their distances to it. It depends on the real images only, so one
    serves every synthetic set scored against them."""

    heldout: np.ndarray  # indices of the held-out real images
    to_real: np.ndarray  # (held-out images, h * w) distances to the real coreset
    coreset_images: int


def real_reference(real: PatchSet, size: int, seed: int, progress: bool = True) -> RealReference:
    if len(real.paths) < 2:
        raise DataError(f"coverage needs at least 2 real good images, got {len(real.paths)}")
    order = np.random.default_rng(seed).permutation(len(real.paths))
    half = len(order) // 2
    reference, heldout = np.sort(order[:half]), np.sort(order[half:])
    real_points = build_coreset(real, reference, size, seed, "real half", progress)
    flat = real.features[heldout].reshape(-1, real.features.shape[2])
    return RealReference(heldout, _nearest(flat, real_points).reshape(len(heldout), -1), len(reference))


def coverage(
    synthetic: PatchSet,
    real: PatchSet,
    size: int,
    seed: int,
    reference: RealReference | None = None,
    progress: bool = True,
) -> Coverage:
    """How well a coreset of the synthetic images explains held-out real patches, against a
    coreset of the same size built from the other half of the real images."""
    reference = reference or real_reference(real, size, seed, progress)
    heldout, to_real = reference.heldout, reference.to_real
    synthetic_points = build_coreset(
        synthetic, np.arange(len(synthetic.paths)), size, seed, "synthetic", progress
    )
    flat = real.features[heldout].reshape(-1, real.features.shape[2])
    usable = real.usable[heldout]
    to_synthetic = _nearest(flat, synthetic_points).reshape(usable.shape)
    median_synthetic = float(np.median(to_synthetic[usable]))
    median_real = float(np.median(to_real[usable]))
    threshold = float(np.quantile(to_real[usable], EXPLAINED_QUANTILE))
    return Coverage(
        ratio=median_synthetic / median_real,
        median_synthetic=median_synthetic,
        median_real=median_real,
        threshold=threshold,
        unexplained_share=float(np.mean(to_synthetic[usable] > threshold)),
        heldout=heldout,
        real_coreset_images=reference.coreset_images,
        synthetic_distances=np.where(usable, to_synthetic, np.nan).astype(np.float32),
    )


def _cell(image: np.ndarray, label: str) -> np.ndarray:
    """One image of the map at CELL_PX², square as the backbone sees it, with a label above."""
    pixels = cv2.resize(image, (CELL_PX, CELL_PX), interpolation=cv2.INTER_AREA)
    strip = np.full((LABEL_PX, CELL_PX, 3), 255, np.uint8)
    text = label if len(label) <= 28 else f"{label[:11]}..{label[-15:]}"  # keep the name's end
    cv2.putText(strip, text, (2, LABEL_PX - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, pixels])


def coverage_map(synthetic: PatchSet, real: PatchSet, cov: Coverage, settings: GapSettings) -> np.ndarray:
    """Rows of held-out real images, from the worst explained to the best, their unexplained
    patches in red (those left out under a defect mask in blue), each beside its nearest
    synthetic images (by mean patch feature)."""
    unexplained = cov.synthetic_distances > cov.threshold  # NaN (masked) compares False
    share = unexplained.sum(axis=1) / np.maximum(real.usable[cov.heldout].sum(axis=1), 1)
    ranking = np.argsort(-share, kind="stable")
    picks = ranking[np.unique(np.linspace(0, len(ranking) - 1, settings.rows).round().astype(int))]
    real_desc, synthetic_desc = real.descriptors(), synthetic.descriptors()
    rows = []
    for pick in picks:
        index = cov.heldout[pick]
        image = cv2.resize(read_image(real.paths[index]), (CELL_PX, CELL_PX), interpolation=cv2.INTER_AREA)
        red = cv2.resize(
            unexplained[pick].reshape(real.grid).astype(np.uint8),
            (CELL_PX, CELL_PX),
            interpolation=cv2.INTER_NEAREST,
        ).astype(bool)
        left_out = cv2.resize(
            (~real.usable[index]).reshape(real.grid).astype(np.uint8),
            (CELL_PX, CELL_PX),
            interpolation=cv2.INTER_NEAREST,
        ).astype(bool)
        image[red] = (0.45 * image[red] + 0.55 * np.array([255, 0, 0])).astype(np.uint8)
        image[left_out] = (0.6 * image[left_out] + 0.4 * np.array([0, 90, 255])).astype(np.uint8)
        cells = [_cell(image, f"{share[pick]:.0%} red: real {real.paths[index].stem}")]
        near = np.argsort(np.linalg.norm(synthetic_desc - real_desc[index], axis=1))[: settings.neighbours]
        cells += [_cell(read_image(synthetic.paths[j]), f"synthetic {synthetic.paths[j].stem}") for j in near]
        gap = np.full((LABEL_PX + CELL_PX, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([part for c in cells for part in (c, gap)][:-1], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows)


def measure(synthetic: PatchSet, real: PatchSet, settings: GapSettings) -> tuple[dict, Coverage]:
    """The gap numbers (metrics.json without the provenance) and the coverage details."""
    sides = {"synthetic": synthetic.patches(), "real": real.patches()}
    mean, std = mmd2_subsets(*sides.values(), settings.samples, settings.subsets, settings.seed)
    cov = coverage(synthetic, real, settings.coreset_size, settings.seed)
    metrics = {
        "mmd2": mean,
        "mmd2_std": std,
        "samples_used": {side: min(settings.samples, len(p)) for side, p in sides.items()},
        "warnings": [
            f"--samples {settings.samples} is more than the {len(p)} {side} patches: every MMD² "
            f"subset takes all {len(p)}"
            for side, p in sides.items()
            if settings.samples > len(p)
        ],
        "coverage_ratio": cov.ratio,
        "median_nn_synthetic": cov.median_synthetic,
        "median_nn_real": cov.median_real,
        "unexplained_share": cov.unexplained_share,
        "unexplained_threshold": cov.threshold,
        "synthetic": {"images": len(synthetic.paths), "patches": int(synthetic.usable.sum())},
        "real": {
            "images": len(real.paths),
            "patches": int(real.usable.sum()),
            "patches_left_out": int((~real.usable).sum()),
            "coreset_images": cov.real_coreset_images,
            "heldout_images": len(cov.heldout),
        },
    }
    return metrics, cov


def run_gap(
    synthetic: Path,
    real: Path,
    out: Path,
    config: PatchCoreConfig,
    settings: GapSettings,
    real_patches: PatchSet | None = None,
) -> dict:
    """Measure, then write metrics.json, coverage_map.png and report.html into `out`.

    `real_patches` (from `load_patches`) saves re-extracting the real features when one real
    set is compared with many synthetic ones.
    """
    from train.patchcore.model import patch_features

    start = time.perf_counter()
    real_patches = real_patches or load_patches(real, config, settings, "real")
    synthetic_patches = load_patches(synthetic, config, settings, "synthetic")
    metrics, cov = measure(synthetic_patches, real_patches, settings)
    metrics["synthetic"]["data"] = str(synthetic)
    metrics["real"].update(data=str(real), split=settings.split, with_defective=settings.with_defective)
    metrics.update(
        settings=settings.model_dump(),
        patchcore=config.to_dict(),
        weights_id=patch_features(config).weights_id,
        explained_quantile=EXPLAINED_QUANTILE,
        seconds=time.perf_counter() - start,
    )
    out.mkdir(parents=True, exist_ok=True)
    picture = out / "coverage_map.png"
    atomic_write_png(picture, coverage_map(synthetic_patches, real_patches, cov, settings))
    atomic_write_json(out / "metrics.json", metrics)
    write_html(
        out / "report.html",
        "synthetic-to-real gap",
        [
            Section(
                "gap in PatchCore patch-feature space",
                f"synthetic {synthetic} against real {real} ({settings.split} split). Coverage ratio: "
                "median distance of held-out real patches to a coreset of the synthetic images over "
                "that to a coreset of the other real half (1.0 = as good as real).",
                (
                    ["MMD²", "± std", "coverage ratio", "unexplained share", "synthetic imgs", "real imgs"],
                    [
                        [
                            metrics["mmd2"],
                            metrics["mmd2_std"],
                            cov.ratio,
                            cov.unexplained_share,
                            len(synthetic_patches.paths),
                            len(real_patches.paths),
                        ]
                    ],
                ),
            ),
            Section(
                "coverage map",
                f"Held-out real images, worst explained first. Red: patches farther from the "
                f"synthetic coreset than {EXPLAINED_QUANTILE:.0%} of held-out real patches are from "
                "the real coreset, i.e. what the scene does not render; blue: left out (under a defect "
                "mask). Beside each: its nearest "
                "synthetic images (mean patch feature).",
                images=[("coverage map", picture)],
            ),
        ],
    )
    return metrics


@click.command("gap")
@click.option(
    "--synthetic", "synthetic", required=True, type=click.Path(path_type=Path), help="Synthetic dataset."
)
@click.option(
    "--real", "real", required=True, type=click.Path(path_type=Path), help="Real dataset or image folder."
)
@click.option("--out", type=OutputPath(folder=True), default=Path("runs/gap"), show_default=True)
@click.option("--split", default="train", show_default=True, help="Split of canonical datasets to use.")
@click.option(
    "--with-defective", is_flag=True, help="Use real images with defects too, their defect patches left out."
)
@click.option(
    "--imgsz",
    type=image_size(16),
    default=256,
    show_default=True,
    help="Backbone input size (as the coreset's).",
)
@click.option("--coreset-size", type=int, default=1024, show_default=True)
@click.option(
    "--samples",
    type=int,
    default=1000,
    show_default=True,
    help="Patches per side in one MMD² subset (a side with fewer gives all, with a warning).",
)
@click.option("--subsets", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def gap(synthetic: Path, real: Path, out: Path, imgsz: int, device: str, **options) -> None:
    """Gap score of synthetic against real good images: MMD², coverage ratio, coverage map."""
    from train.patchcore import PatchCoreConfig

    config = PatchCoreConfig(image_size=(imgsz, imgsz), device=device)
    metrics = run_gap(synthetic, real, out, config, GapSettings(**options))
    for line in metrics["warnings"]:
        click.echo(f"Warning: {line}.", err=True)
    std = fmt(None) if undefined(metrics["mmd2_std"]) else f"{metrics['mmd2_std']:.2g}"
    click.echo(
        f"MMD² {metrics['mmd2']:.4g} ± {std}, coverage ratio "
        f"{metrics['coverage_ratio']:.3f} ({metrics['unexplained_share']:.0%} of held-out real patches "
        f"unexplained); wrote metrics.json, coverage_map.png and report.html in {out}"
    )
