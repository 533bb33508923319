"""How close do a scene's renders come to real photographs of its surface?

    nice .venv/bin/python benchmarks/tile_realism.py [--real-set magnetic_tile|aitex|leather]
        [--renderer cycles|raster] [--n 12] [--per-class 3] [--size 128] [--samples 16]
        [--scene PATH] [--real PATH] [--montage PATH] [--figure PATH]

Renders `n` good images of the real set's scene and `per-class` defective images per defect
class (that class only, no impurities), converts them to grey like the real camera, and
compares them with the real images, all at size × size. Real sets (../shared/real):

- magnetic_tile (scenes/metal_tile.yaml): MT_Free and MT_<Class> images resized to size;
- aitex (scenes/textile_aitex.yaml): 256² tiles of the line-scan strips, right of the
  saturated white band (columns whose median is >= 250) and a 64 px selvage margin; good tiles
  from the defect-free strips, one tile centred on each defect strip's largest mask region;
  class names from the defect code (synth/aitex.py); looks by fabric code (FABRIC_LOOKS);
- leather (scenes/leather_patch.yaml): the 256² patches and their masks (class from the file
  name, `wringle` = wrinkle); there are no defect-free patches, so the surface figures use
  every patch; a patch's look is that of the synthetic good image nearest its mean colour and
  fine texture.

Prints one JSON line per figure with the synthetic and the real value:

- grey_mean, grey_std: mean over images of the image's grey mean and standard deviation;
- fine_texture_std: std of (image − Gaussian blur σ = 2 px), the contrast of the fine texture
  alone (without slow falloffs);
- gradient_ratio: E[(∂I/∂x)²] / E[(∂I/∂y)²], geometric mean over images; vertical grinding
  marks (or warp threads) make it large;
- column_profile (magnetic_tile): column means / image mean in 8 bins across the tile (the
  brightness falloff of the curved tile), averaged over images; distance = mean |synth − real|;
- spectrum: radially averaged log10 power spectrum of I / mean(I) − 1 in 8 log-spaced bins
  from 1/64 to 1/2 cycle per pixel (how much relative texture there is at each scale);
  distance = RMS;
- look_<name> (aitex, leather): per look, grey mean and std, fine texture std, mean RGB and
  the texture spectrum peak: the strongest frequency of the mean 2D power spectrum with a
  period under 32 px, as its period (px) and the angle of its stripes from the image rows
  (degrees, y down: 90 = vertical stripes, under 90 = falling to the right);
- contrast_<class>: mean |grey inside the defect mask − grey in a ring around it|, in grey
  levels and divided by the image's std, over defect images (synthetic: rendered id pass,
  real: the dataset's masks);
- defect_<class>: medians over defect regions (synthetic: each instance, real: each connected
  mask region of at least 4 px) of the length (long side of the smallest enclosing rectangle,
  px), the mask width (area / length), the core width (pixels deviating from the ring's median
  by more than half the peak, / length: real masks are coarse brush outlines wider than the
  defect, so this is the width to compare) and the peak contrast (10th or 90th percentile of
  grey − ring median, whichever side the region's mean lies on; negative = darker).

--figure writes one synthetic and one real image per class (a good one first where the real
set has good images), 1:1 crops of --crop px centred on the defect, defect outlines in green.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from synth.aitex import defect_class, parse_name
from synth.config import load_config
from synth.images import decode_file, read_image
from synth.layers import build_maps
from synth.render import as_recorded
from synth.scene import SceneSpec, sample_scene

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "real"
REAL = SHARED / "magnetic_tile"
KIND_TO_REAL = {
    "pit": "MT_Blowhole",
    "crack": "MT_Crack",
    "break": "MT_Break",
    "fray": "MT_Fray",
    "uneven": "MT_Uneven",
}
BINS = 8
PEAK_MAX_PERIOD = 32  # px: the texture spectrum peak ignores slower variation
# AITEX fabric code -> look of scenes/textile_aitex.yaml (from the FFT of the good strips).
FABRIC_LOOKS = {
    "00": "plain", "03": "plain", "01": "fine_plain",
    "02": "twill", "05": "twill", "04": "steep_twill", "06": "steep_twill",
}  # fmt: skip
AITEX_TILE = 256
AITEX_SELVAGE = 64  # px right of the white band that belong to the selvage, not the fabric

Pair = tuple[np.ndarray, np.ndarray]  # (image, boolean defect mask)
Sample = tuple[np.ndarray, np.ndarray, str | None]  # a real defect image, its mask, its look


def real_images(real: Path, name: str, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grey, mask) pairs of one real magnetic-tile class, resized to size × size (masks
    thresholded)."""
    pairs = []
    for path in sorted((real / name / "Imgs").glob("*.jpg")):
        grey = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (size, size), cv2.INTER_AREA)
        mask = cv2.imread(str(path.with_suffix(".png")), cv2.IMREAD_GRAYSCALE)
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA) >= 128
        pairs.append((grey, mask))
    return pairs


# --- real sets ---------------------------------------------------------------------------


@dataclass
class RealSet:
    """A folder of real photographs as this benchmark compares them with a scene."""

    name: str
    scene: Path
    folder: Path
    colour: bool  # compare colour too (the leather patches); else grey only
    good: Callable[[Path, int], list[np.ndarray]]  # real good images
    defects: Callable[[Path, int], dict[str, list[Sample]]]  # class (or kind) -> samples
    looks: Callable[[Path, int], dict[str, list[np.ndarray]]] | None = None  # look -> images
    by_kind: bool = False  # defects keyed by defect kind instead of class name


def magnetic_tile_good(folder: Path, size: int) -> list[np.ndarray]:
    return [g for g, _ in real_images(folder, "MT_Free", size)]


def magnetic_tile_defects(folder: Path, size: int) -> dict[str, list[Sample]]:
    return {
        kind: [(g, m, None) for g, m in real_images(folder, name, size)]
        for kind, name in KIND_TO_REAL.items()
    }


def grey_of(path: Path) -> np.ndarray:
    return cv2.cvtColor(read_image(path), cv2.COLOR_RGB2GRAY)


def fabric_start(grey: np.ndarray) -> int:
    """First column of fabric: right of the saturated white band (columns whose median is
    >= 250, in the strip's left half) and the selvage beside it; 0 without a band."""
    band = np.nonzero(np.median(grey, axis=0)[: grey.shape[1] // 2] >= 250)[0]
    return int(band.max()) + 1 + AITEX_SELVAGE if band.size else 0


def aitex_tiles(grey: np.ndarray, size: int) -> list[np.ndarray]:
    start = fabric_start(grey)
    tiles = [grey[:, x : x + AITEX_TILE] for x in range(start, grey.shape[1] - AITEX_TILE + 1, AITEX_TILE)]
    return [
        cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA) if size != AITEX_TILE else t for t in tiles
    ]


def aitex_looks(folder: Path, size: int) -> dict[str, list[np.ndarray]]:
    looks: dict[str, list[np.ndarray]] = {}
    for path in sorted((folder / "NoDefect_images").glob("*/*.png")):
        look = FABRIC_LOOKS.get(parse_name(path.stem)[2])
        if look:
            looks.setdefault(look, []).extend(aitex_tiles(grey_of(path), size))
    return looks


def aitex_good(folder: Path, size: int) -> list[np.ndarray]:
    return [t for tiles in aitex_looks(folder, size).values() for t in tiles]


def aitex_mask(folder: Path, stem: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The union of a strip's masks (`_mask`, `_mask1`, ...) thresholded at 128; None if none."""
    mask = None
    for path in sorted((folder / "Mask_images").glob(f"{stem}_mask*.png")):
        part = decode_file(path)
        if part is None:
            continue
        part = part if part.ndim == 2 else part[..., 0]
        if part.shape != shape[:2]:
            part = cv2.resize(part, shape[1::-1], interpolation=cv2.INTER_NEAREST)
        mask = (part >= 128) if mask is None else mask | (part >= 128)
    return mask


def aitex_defects(folder: Path, size: int) -> dict[str, list[Sample]]:
    """One 256-wide tile per defect strip, centred on its largest mask region."""
    found: dict[str, list[Sample]] = {}
    for path in sorted((folder / "Defect_images").glob("*.png")):
        grey = grey_of(path)
        mask = aitex_mask(folder, path.stem, grey.shape)
        if mask is None or not mask.any():
            continue
        _, labels, stats, centres = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x0 = int(np.clip(centres[largest][0] - AITEX_TILE / 2, 0, grey.shape[1] - AITEX_TILE))
        tile, tile_mask = grey[:, x0 : x0 + AITEX_TILE], mask[:, x0 : x0 + AITEX_TILE]
        if size != AITEX_TILE:
            tile = cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)
            tile_mask = cv2.resize(tile_mask.astype(np.uint8), (size, size), cv2.INTER_NEAREST) > 0
        look = FABRIC_LOOKS.get(parse_name(path.stem)[2])
        found.setdefault(str(defect_class(path.stem)), []).append((tile, tile_mask, look))
    return found


def leather_pairs(folder: Path, size: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(class, RGB image, mask) of every patch; a mask of another size is resized to the image."""
    found = []
    for path in sorted((folder / "images").glob("*.png")):
        rgb = read_image(path)
        mask = decode_file(folder / "masks" / path.name)
        if mask is None:
            continue
        mask = mask if mask.ndim == 2 else mask[..., 0]
        if mask.shape != rgb.shape[:2]:
            mask = cv2.resize(mask, rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        if rgb.shape[:2] != (size, size):
            rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
        name = path.stem.rsplit("_", 1)[0].replace("wringle", "wrinkle")
        found.append((name, rgb, mask >= 128))
    return found


def leather_good(folder: Path, size: int) -> list[np.ndarray]:
    return [rgb for _, rgb, _ in leather_pairs(folder, size)]


def leather_defects(folder: Path, size: int) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = {}
    for name, rgb, mask in leather_pairs(folder, size):
        found.setdefault(name, []).append((rgb, mask, None))  # look: by colour, in main()
    return found


REAL_SETS = {
    "magnetic_tile": RealSet(
        "magnetic_tile", REPO / "scenes" / "metal_tile.yaml", REAL, False,
        magnetic_tile_good, magnetic_tile_defects, by_kind=True,
    ),
    "aitex": RealSet(
        "aitex", REPO / "scenes" / "textile_aitex.yaml", SHARED / "aitex", False,
        aitex_good, aitex_defects, aitex_looks,
    ),
    "leather": RealSet(
        "leather", REPO / "scenes" / "leather_patch.yaml", SHARED / "leather", True,
        leather_good, leather_defects,
    ),
}  # fmt: skip


# --- synthetic specs ----------------------------------------------------------------------


def good_specs(scene: Path, n: int, size: int, samples: int) -> list[SceneSpec]:
    """The first n train images (good in the shipped scenes); the train split is enlarged to n
    good images where it is smaller (which changes the config hash, so only then)."""
    overrides: dict = {"camera": {"resolution": [size, size]}, "render": {"samples": samples}}
    train = load_config(scene).splits["train"]
    if train.count < n or train.good_fraction < 1.0:
        overrides["splits"] = {"train": {"count": n, "good_fraction": 1.0}}
    config = load_config(scene, overrides)
    return [sample_scene(config, i) for i in range(n)]


def defect_specs(scene: Path, kind: str, count: int, size: int, samples: int) -> list[SceneSpec]:
    """`count` defective specs, each keeping only its marks of `kind` (a defect kind or a class
    name) and no stains, so a contrast figure belongs to one kind."""
    overrides = {
        "camera": {"resolution": [size, size]},
        "render": {"samples": samples},
        "splits": {"train": {"count": 1000, "good_fraction": 0.0}},
    }
    config = load_config(scene, overrides)
    specs = []
    for index in range(1000):
        spec = sample_scene(config, index)
        names = {c.id: c.name for c in spec.classes}
        marks = tuple(m for m in spec.marks if kind in (m.kind, names[m.class_id]))
        if marks:
            specs.append(replace(spec, marks=marks, stains=()))
        if len(specs) == count:
            break
    return specs


# --- figures ------------------------------------------------------------------------------


def column_profile(grey: np.ndarray) -> np.ndarray:
    columns = grey.mean(axis=0) / max(grey.mean(), 1e-6)
    return np.array([part.mean() for part in np.array_split(columns, BINS)])


def power_spectrum(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(power, fx, fy) of the mean-normalised, Hann-windowed image, zero frequency centred."""
    x = grey / max(grey.mean(), 1e-6) - 1.0
    h, w = x.shape
    x = x * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fftshift(np.fft.fft2(x))) ** 2
    fy, fx = np.meshgrid(
        np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij"
    )
    return power, fx, fy


def spectrum(grey: np.ndarray) -> np.ndarray:
    """Radially averaged log10 power of the mean-normalised, Hann-windowed image."""
    power, fx, fy = power_spectrum(grey)
    h, w = grey.shape
    radius = np.hypot(fx, fy)
    edges = np.geomspace(2.0 / min(h, w), 0.5, BINS + 1)
    return np.array(
        [
            np.log10(power[(radius >= lo) & (radius < hi)].mean())
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
    )


def spectrum_peak(greys: list[np.ndarray]) -> dict[str, float]:
    """Period (px) and stripe angle (degrees from the rows, y down) of the strongest frequency
    of the images' mean power spectrum, among periods under PEAK_MAX_PERIOD px."""
    spectra = [power_spectrum(g) for g in greys]
    power = np.mean([p for p, _, _ in spectra], axis=0)
    _, fx, fy = spectra[0]
    radius = np.hypot(fx, fy)
    candidates = (radius > 1.0 / PEAK_MAX_PERIOD) & ((fy > 0) | ((fy == 0) & (fx > 0)))
    index = np.unravel_index(np.argmax(np.where(candidates, power, -1.0)), power.shape)
    f_x, f_y = float(fx[index]), float(fy[index])
    angle = (np.degrees(np.arctan2(f_y, f_x)) + 90.0) % 180.0
    return {"period_px": 1.0 / float(radius[index]), "angle_deg": angle}


def gradient_ratio(grey: np.ndarray) -> float:
    gx, gy = np.diff(grey, axis=1), np.diff(grey, axis=0)
    return float((gx**2).mean() / max((gy**2).mean(), 1e-9))


def fine_texture_std(grey: np.ndarray) -> float:
    return float((grey - cv2.GaussianBlur(grey, (0, 0), 2.0)).std())


def ring_around(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    near = cv2.dilate(m, np.ones((3, 3), np.uint8)) > 0
    far = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))) > 0
    return far & ~near


def defect_contrast(grey: np.ndarray, mask: np.ndarray) -> tuple[float, float] | None:
    """(|inside − ring| in grey levels, the same / image std), or None for a tiny mask."""
    if mask.sum() < 3:
        return None
    ring = ring_around(mask)
    if ring.sum() < 3:
        return None
    difference = abs(float(grey[mask].mean()) - float(grey[ring].mean()))
    return difference, difference / max(float(grey.std()), 1e-6)


def defect_shape(grey: np.ndarray, region: np.ndarray) -> dict[str, float] | None:
    """Length, mask width, core width (px) and peak contrast of one defect region."""
    ring = ring_around(region)
    if region.sum() < 4 or ring.sum() < 3:
        return None
    points = np.column_stack(np.nonzero(region))[:, ::-1].astype(np.float32)
    length = max(max(cv2.minAreaRect(points)[1]), 1.0)
    deviation = grey[region] - float(np.median(grey[ring]))
    peak = float(np.percentile(deviation, 10 if deviation.mean() < 0 else 90))
    core = float((deviation * np.sign(peak) > abs(peak) / 2).sum()) if peak else 0.0
    return {
        "length_px": float(length),
        "mask_width_px": float(region.sum()) / length,
        "core_width_px": core / length,
        "peak_contrast": peak,
    }


def regions(mask: np.ndarray) -> list[np.ndarray]:
    """The connected regions of a real mask."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8))
    return [labels == k for k in range(1, count)]


def median_shape(shapes: list[dict[str, float] | None]) -> dict[str, float | int]:
    found = [s for s in shapes if s is not None]
    if not found:
        return {"regions": 0}
    return {k: float(np.median([s[k] for s in found])) for k in found[0]} | {"regions": len(found)}


def global_figures(greys: list[np.ndarray]) -> dict[str, object]:
    return {
        "grey_mean": float(np.mean([g.mean() for g in greys])),
        "grey_std": float(np.mean([g.std() for g in greys])),
        "fine_texture_std": float(np.mean([fine_texture_std(g) for g in greys])),
        "gradient_ratio": float(np.exp(np.mean([np.log(gradient_ratio(g)) for g in greys]))),
        "column_profile": np.mean([column_profile(g) for g in greys], axis=0),
        "spectrum": np.mean([spectrum(g) for g in greys], axis=0),
    }


def look_figures(images: list[np.ndarray]) -> dict[str, object]:
    greys = [to_grey(i) for i in images]
    figures: dict[str, object] = {
        "images": len(images),
        "grey_mean": float(np.mean([g.mean() for g in greys])),
        "grey_std": float(np.mean([g.std() for g in greys])),
        "fine_texture_std": float(np.mean([fine_texture_std(g) for g in greys])),
        **spectrum_peak(greys),
    }
    if images[0].ndim == 3:
        figures["mean_rgb"] = np.mean([mean_colour(i) for i in images], axis=0)
    return figures


def mean_contrast(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float | int]:
    found = [c for c in (defect_contrast(g, m) for g, m in pairs) if c is not None]
    if not found:
        return {"grey_levels": float("nan"), "per_std": float("nan"), "images": 0}
    levels, per_std = zip(*found, strict=True)
    return {"grey_levels": float(np.mean(levels)), "per_std": float(np.mean(per_std)), "images": len(found)}


def to_grey(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return grey.astype(np.float64)


def emit(figure: str, synthetic: object, real: object, **extra: object) -> None:
    def plain(value: object) -> object:
        if isinstance(value, np.ndarray):
            return [round(float(v), 3) for v in value]
        if isinstance(value, float):
            return round(value, 3)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    print(
        json.dumps({"figure": figure, "synthetic": plain(synthetic), "real": plain(real), **plain(extra)}),
        flush=True,
    )


# --- the comparison figure ------------------------------------------------------------------


def crop_at(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A size × size crop (1:1 pixels) centred on the mask's largest region (the image centre
    for an empty mask)."""
    h, w = mask.shape
    cy, cx = h / 2, w / 2
    if mask.any():
        _, _, stats, centres = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        cx, cy = centres[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
    x0 = int(np.clip(cx - size / 2, 0, max(w - size, 0)))
    y0 = int(np.clip(cy - size / 2, 0, max(h - size, 0)))
    return image[y0 : y0 + size, x0 : x0 + size], mask[y0 : y0 + size, x0 : x0 + size]


def outlined(image: np.ndarray, mask: np.ndarray, text: str) -> np.ndarray:
    """The image with the mask's outline 2 px outside it (not over a thin defect) and a label."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8))
    edge = cv2.morphologyEx(grown, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) * (1 - grown)
    rgb[edge > 0] = (0, 255, 0)
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(rgb, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, colour, thickness, cv2.LINE_AA)
    return rgb


def comparison_figure(columns: list[tuple[str, Pair | None, Pair | None]], crop: int, path: Path) -> None:
    """One column per class: the synthetic image above the real one (blank where missing)."""
    blank = np.full((crop, crop, 3), 255, np.uint8)
    rows: list[list[np.ndarray]] = [[], []]
    for name, *pairs in columns:
        for row, source, pair in zip(rows, ("synthetic", "real"), pairs, strict=True):
            if pair is None:
                row.append(blank)
                continue
            image, mask = crop_at(*pair, crop)
            row.append(outlined(image, mask, f"{source} {name}"))
    picture = np.vstack([np.hstack(r) for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{path}: {picture.shape[1]}x{picture.shape[0]}, {path.stat().st_size / 1e6:.2f} MB", flush=True)


# --- main ---------------------------------------------------------------------------------


def make_renderer(name: str):
    if name == "raster":
        from synth.raster import RasterRenderer

        return RasterRenderer()
    from synth.blender import BlenderRenderer

    return BlenderRenderer()


def mean_colour(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, image.shape[2] if image.ndim == 3 else 1).mean(axis=0)


def appearance(image: np.ndarray) -> np.ndarray:
    """Mean colour and twice the fine texture std: what tells the leather looks apart."""
    return np.append(mean_colour(image), 2 * fine_texture_std(to_grey(image)))


def nearest_look(image: np.ndarray, references: list[tuple[str, np.ndarray]]) -> str:
    """The look of the synthetic image (look, appearance) nearest in appearance: a look can
    span a wide colour range (suede from dark to sand), so its mean would be a poor centre."""
    features = appearance(image)
    return min(references, key=lambda r: float(np.linalg.norm(r[1] - features)))[0]


def emit_surface(
    real_set: RealSet, folder: Path, size: int, good: list[tuple[SceneSpec, np.ndarray]]
) -> list[tuple[str, np.ndarray]]:
    """The surface figures (whole set, then per look); returns (look, appearance) of every
    synthetic good image, to give real images a look (`nearest_look`)."""
    real_good = real_set.good(folder, size)
    synthetic = global_figures([to_grey(g) for _, g in good])
    real = global_figures([to_grey(g) for g in real_good])
    for figure in ("grey_mean", "grey_std", "fine_texture_std", "gradient_ratio"):
        emit(figure, synthetic[figure], real[figure])
    for figure in ("column_profile", "spectrum"):
        if figure == "column_profile" and real_set.name != "magnetic_tile":
            continue
        a, b = np.asarray(synthetic[figure]), np.asarray(real[figure])
        distance = float(
            np.abs(a - b).mean() if figure == "column_profile" else np.sqrt(((a - b) ** 2).mean())
        )
        emit(figure, a, b, distance=distance)
    synthetic_looks: dict[str, list[np.ndarray]] = {}
    for spec, image in good:
        if spec.material.look is not None:
            synthetic_looks.setdefault(spec.material.look, []).append(image)
    references = [(look, appearance(v)) for look, vs in synthetic_looks.items() for v in vs]
    if not references:
        return references
    if real_set.looks is not None:
        real_looks = real_set.looks(folder, size)
    else:  # each real image to the synthetic look of the nearest appearance
        real_looks = {}
        for image in real_good:
            real_looks.setdefault(nearest_look(image, references), []).append(image)
    for look in sorted(synthetic_looks):
        if look in real_looks:
            emit(f"look_{look}", look_figures(synthetic_looks[look]), look_figures(real_looks[look]))
    return references


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-set", choices=sorted(REAL_SETS), default="magnetic_tile")
    parser.add_argument("--renderer", choices=("cycles", "raster"), default="cycles")
    parser.add_argument("--n", type=int, default=12, help="good synthetic images")
    parser.add_argument("--per-class", type=int, default=3, help="synthetic images per defect class")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--scene", type=Path, help="default: the real set's matched scene")
    parser.add_argument("--real", type=Path, help="the real set's folder (default under ../shared/real)")
    parser.add_argument("--montage", type=Path, help="also save the grey renders here (PNG)")
    parser.add_argument("--figure", type=Path, help="write the synthetic-vs-real picture here (PNG)")
    parser.add_argument("--crop", type=int, default=128, help="tile size of --figure (px)")
    args = parser.parse_args()
    real_set = REAL_SETS[args.real_set]
    scene, folder = args.scene or real_set.scene, args.real or real_set.folder

    renderer = make_renderer(args.renderer)

    def render(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
        result = renderer.render(spec, build_maps(spec))
        rgb = as_recorded(result.rgb, spec)
        image = rgb if real_set.colour else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return image, result.instance_ids

    good = [(s, render(s)[0]) for s in good_specs(scene, args.n, args.size, args.samples)]
    real_defects = real_set.defects(folder, args.size)
    if real_set.by_kind:
        classes = list(KIND_TO_REAL)
    else:
        classes = [d.name for d in load_config(scene).defects if d.name in real_defects]
    defective = {
        c: [(s, *render(s)) for s in defect_specs(scene, c, args.per_class, args.size, args.samples)]
        for c in classes
    }

    references = emit_surface(real_set, folder, args.size, good)
    for name in classes:
        ours = [(to_grey(g), ids > 0) for _, g, ids in defective[name]]
        theirs = [(to_grey(g), m) for g, m, _ in real_defects.get(name, [])]
        label = KIND_TO_REAL[name][3:].lower() if real_set.by_kind else name
        emit(f"contrast_{label}", mean_contrast(ours), mean_contrast(theirs))
        if not real_set.by_kind:
            synthetic_shapes = [
                defect_shape(to_grey(g), ids == m.instance_id)
                for spec, g, ids in defective[name]
                for m in spec.marks
            ]
            real_shapes = [defect_shape(g, region) for g, m in theirs for region in regions(m)]
            emit(f"defect_{label}", median_shape(synthetic_shapes), median_shape(real_shapes))

    if args.montage:  # good renders, then one per defect class with its mask outlined in green
        tiles = [cv2.cvtColor(g, cv2.COLOR_GRAY2BGR) if g.ndim == 2 else g[..., ::-1] for _, g in good[:6]]
        for triples in defective.values():
            for _, image, ids in triples[:1]:
                tile = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[..., ::-1].copy()
                edge = cv2.morphologyEx(
                    (ids > 0).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)
                )
                tile[edge > 0] = (0, 255, 0)
                tiles.append(tile)
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 6)
        cv2.imwrite(
            str(args.montage), np.vstack([np.hstack(tiles[k : k + 6]) for k in range(0, len(tiles), 6)])
        )

    if args.figure:  # per class the first real example and a synthetic one of the same look
        columns: list[tuple[str, Pair | None, Pair | None]] = []
        real_good = real_set.good(folder, args.size) if real_set.name != "leather" else []
        if real_good:  # the real leather set has no defect-free patch
            blank = np.zeros(good[0][1].shape[:2], bool)
            columns.append(("good", (good[0][1], blank), (real_good[0], blank[: real_good[0].shape[0]])))
        for name in classes:
            theirs = real_defects.get(name, [])
            look = None
            if theirs:
                look = theirs[0][2] or (nearest_look(theirs[0][0], references) if references else None)
            candidates = defect_specs(scene, name, 200, args.size, args.samples)
            spec = next((c for c in candidates if look is None or c.material.look == look), None)
            ours = render(spec) if spec else None
            label = KIND_TO_REAL[name][3:].lower() if real_set.by_kind else name
            columns.append(
                (label, (ours[0], ours[1] > 0) if ours else None, theirs[0][:2] if theirs else None)
            )
        comparison_figure(columns, args.crop, args.figure)
    if hasattr(renderer, "close"):
        renderer.close()


if __name__ == "__main__":
    main()
