"""How close do scenes/metal_tile.yaml renders come to the real magnetic-tile photographs?

    nice .venv/bin/python benchmarks/tile_realism.py [--n 12] [--per-class 3] [--size 128]
                                                     [--samples 16] [--montage /tmp/tiles.png]

Renders `n` good metal_tile images and `per-class` images per defect kind (that kind only),
converts them to grey like the real camera, and compares them with the real Magnetic Tile
Defect images of ../shared/real/magnetic_tile, all resized to size × size. Prints one JSON
line per figure with the synthetic and the real value:

- grey_mean, grey_std: mean over images of the image's grey mean and standard deviation;
- fine_texture_std: std of (image − Gaussian blur σ = 2 px), the contrast of the grinding
  marks alone (without the slow falloff across the tile);
- gradient_ratio: E[(∂I/∂x)²] / E[(∂I/∂y)²], geometric mean over images; vertical grinding
  marks make it large;
- column_profile: column means / image mean in 8 bins across the tile (the brightness falloff
  of the curved tile), averaged over images; distance = mean |synthetic − real|;
- spectrum: radially averaged log10 power spectrum of I / mean(I) − 1 in 8 log-spaced bins
  from 1/64 to 1/2 cycle per pixel (how much relative texture there is at each scale; the
  falloff across the tile lies below the first bin); distance = RMS;
- contrast_<class>: mean |grey inside the defect mask − grey in a ring around it|, in grey
  levels and divided by the image's std, over defect images (synthetic: rendered id pass,
  real: the dataset's masks of MT_<Class>).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from synth.blender import BlenderRenderer
from synth.config import load_config
from synth.layers import build_maps
from synth.scene import SceneSpec, sample_scene

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real" / "magnetic_tile"
KIND_TO_REAL = {
    "pit": "MT_Blowhole",
    "crack": "MT_Crack",
    "break": "MT_Break",
    "fray": "MT_Fray",
    "uneven": "MT_Uneven",
}
BINS = 8


def real_images(real: Path, name: str, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(grey, mask) pairs of one real class, resized to size × size (masks thresholded)."""
    pairs = []
    for path in sorted((real / name / "Imgs").glob("*.jpg")):
        grey = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (size, size), cv2.INTER_AREA)
        mask = cv2.imread(str(path.with_suffix(".png")), cv2.IMREAD_GRAYSCALE)
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA) >= 128
        pairs.append((grey, mask))
    return pairs


def good_specs(scene: Path, n: int, size: int, samples: int) -> list[SceneSpec]:
    overrides = {"camera": {"resolution": [size, size]}, "render": {"samples": samples}}
    config = load_config(scene, overrides)
    return [sample_scene(config, i) for i in range(n)]  # train split: all good


def defect_specs(scene: Path, kind: str, count: int, size: int, samples: int) -> list[SceneSpec]:
    """`count` defective specs, each keeping only its marks of `kind` (and no stains), so a
    contrast figure belongs to one kind."""
    overrides = {
        "camera": {"resolution": [size, size]},
        "render": {"samples": samples},
        "splits": {"train": {"count": 1000, "good_fraction": 0.0}},
    }
    config = load_config(scene, overrides)
    specs = []
    for index in range(1000):
        spec = sample_scene(config, index)
        marks = tuple(m for m in spec.marks if m.kind == kind)
        if marks:
            specs.append(replace(spec, marks=marks, stains=()))
        if len(specs) == count:
            break
    return specs


def column_profile(grey: np.ndarray) -> np.ndarray:
    columns = grey.mean(axis=0) / max(grey.mean(), 1e-6)
    return np.array([part.mean() for part in np.array_split(columns, BINS)])


def spectrum(grey: np.ndarray) -> np.ndarray:
    """Radially averaged log10 power of the mean-normalised, Hann-windowed image."""
    x = grey / max(grey.mean(), 1e-6) - 1.0
    h, w = x.shape
    x = x * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fftshift(np.fft.fft2(x))) ** 2
    fy, fx = np.meshgrid(
        np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij"
    )
    radius = np.hypot(fx, fy)
    edges = np.geomspace(2.0 / min(h, w), 0.5, BINS + 1)
    return np.array(
        [
            np.log10(power[(radius >= lo) & (radius < hi)].mean())
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
    )


def gradient_ratio(grey: np.ndarray) -> float:
    gx, gy = np.diff(grey, axis=1), np.diff(grey, axis=0)
    return float((gx**2).mean() / max((gy**2).mean(), 1e-9))


def fine_texture_std(grey: np.ndarray) -> float:
    return float((grey - cv2.GaussianBlur(grey, (0, 0), 2.0)).std())


def defect_contrast(grey: np.ndarray, mask: np.ndarray) -> tuple[float, float] | None:
    """(|inside − ring| in grey levels, the same / image std), or None for a tiny mask."""
    if mask.sum() < 3:
        return None
    m = mask.astype(np.uint8)
    near = cv2.dilate(m, np.ones((3, 3), np.uint8)) > 0
    far = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))) > 0
    ring = far & ~near
    if ring.sum() < 3:
        return None
    difference = abs(float(grey[mask].mean()) - float(grey[ring].mean()))
    return difference, difference / max(float(grey.std()), 1e-6)


def global_figures(greys: list[np.ndarray]) -> dict[str, object]:
    return {
        "grey_mean": float(np.mean([g.mean() for g in greys])),
        "grey_std": float(np.mean([g.std() for g in greys])),
        "fine_texture_std": float(np.mean([fine_texture_std(g) for g in greys])),
        "gradient_ratio": float(np.exp(np.mean([np.log(gradient_ratio(g)) for g in greys]))),
        "column_profile": np.mean([column_profile(g) for g in greys], axis=0),
        "spectrum": np.mean([spectrum(g) for g in greys], axis=0),
    }


def mean_contrast(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float | int]:
    found = [c for c in (defect_contrast(g, m) for g, m in pairs) if c is not None]
    if not found:
        return {"grey_levels": float("nan"), "per_std": float("nan"), "images": 0}
    levels, per_std = zip(*found, strict=True)
    return {"grey_levels": float(np.mean(levels)), "per_std": float(np.mean(per_std)), "images": len(found)}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="good synthetic images")
    parser.add_argument("--per-class", type=int, default=3, help="synthetic images per defect kind")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--scene", type=Path, default=REPO / "scenes" / "metal_tile.yaml")
    parser.add_argument("--real", type=Path, default=REAL, help="the magnetic_tile folder")
    parser.add_argument("--montage", type=Path, help="also save the grey renders here (PNG)")
    args = parser.parse_args()

    renderer = BlenderRenderer()

    def grey_render(spec: SceneSpec) -> tuple[np.ndarray, np.ndarray]:
        result = renderer.render(spec, build_maps(spec))
        return cv2.cvtColor(result.rgb, cv2.COLOR_RGB2GRAY), result.instance_ids

    good = [grey_render(s)[0] for s in good_specs(args.scene, args.n, args.size, args.samples)]
    defective = {
        kind: [
            grey_render(s) for s in defect_specs(args.scene, kind, args.per_class, args.size, args.samples)
        ]
        for kind in KIND_TO_REAL
    }
    renderer.close()

    synthetic = global_figures([g.astype(np.float64) for g in good])
    real = global_figures([g.astype(np.float64) for g, _ in real_images(args.real, "MT_Free", args.size)])
    for figure in ("grey_mean", "grey_std", "fine_texture_std", "gradient_ratio"):
        emit(figure, synthetic[figure], real[figure])
    for figure in ("column_profile", "spectrum"):
        a, b = np.asarray(synthetic[figure]), np.asarray(real[figure])
        distance = float(
            np.abs(a - b).mean() if figure == "column_profile" else np.sqrt(((a - b) ** 2).mean())
        )
        emit(figure, a, b, distance=distance)
    for kind, name in KIND_TO_REAL.items():
        ours = [(g.astype(np.float64), ids > 0) for g, ids in defective[kind]]
        theirs = [(g.astype(np.float64), m) for g, m in real_images(args.real, name, args.size)]
        emit(f"contrast_{name[3:].lower()}", mean_contrast(ours), mean_contrast(theirs))

    if args.montage:  # good renders, then one per defect kind with its mask outlined in green
        tiles = [cv2.cvtColor(g, cv2.COLOR_GRAY2BGR) for g in good[:6]]
        for pairs in defective.values():
            for grey, ids in pairs[:1]:
                tile = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
                edge = cv2.morphologyEx(
                    (ids > 0).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)
                )
                tile[edge > 0] = (0, 255, 0)
                tiles.append(tile)
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 6)
        cv2.imwrite(
            str(args.montage), np.vstack([np.hstack(tiles[k : k + 6]) for k in range(0, len(tiles), 6)])
        )


if __name__ == "__main__":
    main()
