"""The cheap 2D baseline as a data source: DRAEM's Perlin anomalies on real good images.

`perlin_dataset` writes a canonical dataset whose defects are made by anomalib's
`PerlinAnomalyGenerator` (anomalib.data.utils.generators.perlin, the DRAEM generator) on the
good images of the train split of a canonical dataset (an imported real set), so that renders
can be measured against it. Image i of n takes the good train image that numpy's generator
seeded with (seed, i) picks, and runs `PerlinAnomalyGenerator(probability=1.0)` (its default
blend factor and rotation) under torch's RNG seeded from the same generator; a mask smaller
than `min_area` pixels is drawn again from the same stream. So every image is a function of
(source dataset, seed, i): a resumed run writes the same bytes as an uninterrupted one.

The anomaly texture is the generator's own augmented Perlin noise (`anomaly_source_path=None`):
no texture folder (DRAEM's DTD) is available offline. The noise is grey and every augmentation
treats the three channels alike, so a grey source stays grey. The mask is the generator's,
thresholded to {0, 1}; its 8-connected components are the instances of one class, `defect`.
`good` more images are the chosen good train images unchanged. A source image may be picked
more than once, also for both splits, as in DRAEM's training.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field, field_validator
from tqdm import tqdm

from synth.annotations import Annotations, ClassInfo
from synth.dataset import Dataset, Sample
from synth.errors import ConfigError, DataError
from synth.outputs import check_output
from synth.render import RenderSummary
from synth.writers import DatasetWriter
from train.settings import Settings

GENERATOR = "anomalib.data.utils.generators.perlin.PerlinAnomalyGenerator"
TEXTURE = "the generator's own augmented Perlin noise (anomaly_source_path=None; no texture folder, e.g. DTD)"
CLASSES = (ClassInfo(1, "defect", "defect"),)
MAX_ATTEMPTS = 100  # masks drawn for one image before its --min-area is given up as unreachable


class PerlinSettings(Settings):
    """How many images, from which seed, and how they are split; the same settings on the same
    source dataset make the same dataset."""

    what: ClassVar[str] = "perlin"

    n: int = Field(ge=1)  # images with Perlin anomalies
    seed: int = Field(ge=0)
    good: int = Field(0, ge=0)  # unchanged good train images added
    min_area: int = Field(200, ge=1)  # smallest mask in pixels; a smaller one is drawn again
    split: tuple[float, float] = (0.8, 0.2)  # train and val fractions (no test split)

    @field_validator("split")
    @classmethod
    def _fractions(cls, split: tuple[float, float]) -> tuple[float, float]:
        if min(split) < 0 or abs(sum(split) - 1) > 1e-6:
            raise ValueError("the train and val fractions must be at least 0 and add up to 1")
        return split


def perlin_dataset(
    real: str | Path,
    out: str | Path,
    n: int,
    seed: int,
    *,
    good: int = 0,
    min_area: int = 200,
    split: tuple[float, float] = (0.8, 0.2),
    overwrite: bool = False,
    progress: bool = True,
) -> RenderSummary:
    """Write `n` Perlin-anomaly images (and `good` unchanged ones) made from the good train
    images of the canonical dataset `real` into `out`; finished samples are skipped.

    The dataset is keyed by its `source` record: the resolved path of `real`, the ids and count
    of its good train images, the anomalib version and the settings (n, seed, good, min_area,
    split). `out` must be empty or hold a dataset with the same record (a resume), unless
    `overwrite` replaces it. Everything is checked before anything is written.
    """
    settings = PerlinSettings(n=n, seed=seed, good=good, min_area=min_area, split=split)
    real, out = Path(real), Path(out)
    check_output(out, folder=True, inputs=[real])
    sources = good_train_samples(real)
    check_min_area(settings.min_area, sources)
    record = perlin_source(real, sources, settings)
    start = time.perf_counter()
    total = settings.n + settings.good
    made = 0
    with DatasetWriter(out, CLASSES, record, overwrite) as writer:
        for index in tqdm(range(total), desc=f"perlin {real.name}", unit="img", disable=not progress):
            split_name = split_of(index, settings)
            image_id = f"{index:06d}"
            if writer.has(split_name, image_id):
                continue
            pick, torch_seed = draw(settings.seed, index, len(sources))
            source = sources[pick]
            image = source.image()
            mm_per_px = source.meta.get("mm_per_px")
            spec: dict[str, Any] = {"source_split": source.split, "source_id": source.id}
            if index < settings.n:
                where = source.image_path
                image, mask, attempts = perlin_anomaly(image, torch_seed, settings.min_area, where)
                labels = Annotations.from_semantic_mask(mask, CLASSES, mm_per_px)
                spec |= {"torch_seed": torch_seed, "attempts": attempts}
            else:
                nothing = np.zeros(image.shape[:2], np.uint16)
                labels = Annotations.from_instance_map(nothing, {}, CLASSES, mm_per_px)
            writer.write(split_name, image_id, image, labels, spec=spec)
            made += 1
        counts = writer.finalize()
    return RenderSummary(made, total - made, time.perf_counter() - start, counts)


def good_train_samples(real: Path) -> list[Sample]:
    """The good samples of the train split of the canonical dataset `real`, in id order."""
    train = Dataset(real).samples("train")
    found = [s for s in train if s.good]
    if not found:
        raise DataError(
            f"the train split of {real} has no good image: none of its {len(train)} train samples "
            "is good; the Perlin anomalies are pasted onto good train images"
        )
    return found


def check_min_area(min_area: int, sources: list[Sample]) -> None:
    """Refuse a `min_area` larger than a source image: no mask on it could reach it."""
    smallest = min(sources, key=lambda s: s.meta["width"] * s.meta["height"])
    width, height = smallest.meta["width"], smallest.meta["height"]
    if min_area > width * height:
        raise ConfigError(
            f"--min-area {min_area} px: larger than the good train image {smallest.image_path} "
            f"({width}x{height} = {width * height} px); give a smaller --min-area"
        )


def perlin_source(real: Path, sources: list[Sample], settings: PerlinSettings) -> dict[str, Any]:
    """The dataset's `source` record; a resume must match it (DatasetWriter)."""
    ids = "\n".join(s.id for s in sources)
    return {
        "generator": GENERATOR,
        "anomalib": importlib.metadata.version("anomalib"),
        "anomaly_texture": TEXTURE,
        "real": str(real.resolve()),
        "real_good_train": len(sources),
        "real_good_train_ids_sha256": hashlib.sha256(ids.encode()).hexdigest(),
        **settings.model_dump(),
        "versions": {
            name: importlib.metadata.version(name) for name in ("defectsynth", "torch", "torchvision")
        },
    }


def split_of(index: int, settings: PerlinSettings) -> str:
    """The split of image `index`: the first round(count × train fraction) Perlin images, and
    likewise of the good ones, are train, the others val."""
    first, count = (0, settings.n) if index < settings.n else (settings.n, settings.good)
    return "train" if index - first < round(count * settings.split[0]) else "val"


def draw(seed: int, index: int, count: int) -> tuple[int, int]:
    """Image `index`'s source (an index into the `count` good train images, in id order) and the
    seed of torch's RNG for its anomaly, both from numpy's generator seeded with (seed, index)."""
    rng = np.random.default_rng([seed, index])
    return int(rng.integers(count)), int(rng.integers(2**63))


def perlin_anomaly(
    image: np.ndarray, torch_seed: int, min_area: int, where: Path
) -> tuple[np.ndarray, np.ndarray, int]:
    """`image` (8-bit RGB, read from `where`) with a Perlin anomaly of at least `min_area`
    pixels, its {0, 1} mask and the attempts it took: `PerlinAnomalyGenerator(probability=1.0)`
    made and run under torch's RNG seeded with `torch_seed` (the caller's RNG state is kept),
    values clipped to [0, 1] and rounded to 8 bits."""
    # anomalib takes seconds to import: only once there is an image to make, not for a refusal
    from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator

    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        generator = PerlinAnomalyGenerator(probability=1.0)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            augmented, mask = generator(tensor)
            binary = (mask[0] > 0.5).numpy().astype(np.uint8)
            if int(binary.sum()) >= min_area:
                pixels = (augmented.clamp(0, 1) * 255).round().to(torch.uint8)
                return pixels.permute(1, 2, 0).numpy(), binary, attempt
    height, width = image.shape[:2]
    raise DataError(
        f"{where}: no Perlin mask of at least --min-area {min_area} px in {MAX_ATTEMPTS} "
        f"draws on this {width}x{height} image; give a smaller --min-area"
    )
