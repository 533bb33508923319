"""Render the docs pictures: docs/scenes.png and docs/synthetic_vs_real.png.

    nice .venv/bin/python benchmarks/render_docs.py [--samples 16] [--size 200]

scenes.png: two defective test images per scene (leather, textile, metal, metal_tile), each
beside its instance mask coloured by class. synthetic_vs_real.png: class by class (free,
blowhole, crack, break, fray, uneven), a rendered metal_tile image (grey, as the real camera;
only that defect kind) above the first real Magnetic Tile Defect image of the class from
../shared/real (skipped with a message when that folder is absent), defect outlines in green.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tile_realism import KIND_TO_REAL, defect_specs, good_specs

from synth.blender import BlenderRenderer
from synth.config import load_config
from synth.layers import build_maps
from synth.scene import SceneSpec, sample_scene, split_of

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "real" / "magnetic_tile"
SCENES = ("leather", "textile", "metal", "metal_tile")
PALETTE = np.array(  # class id → colour (RGB); 0 stays black
    [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
     (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)],
    np.uint8,
)  # fmt: skip


def defective_specs(name: str, count: int, size: int, samples: int) -> list[SceneSpec]:
    """The first `count` test images of scenes/<name>.yaml that carry a defect."""
    overrides = {"camera": {"resolution": [size, size]}, "render": {"samples": samples}}
    config = load_config(REPO / "scenes" / f"{name}.yaml", overrides)
    start = sum(v for k, v in config.split_counts().items() if k != "test")
    specs = []
    for index in range(start, start + config.split_counts()["test"]):
        spec = sample_scene(config, index)
        if spec.marks and split_of(config, index) == "test":
            specs.append(spec)
        if len(specs) == count:
            break
    return specs


def class_mask(spec: SceneSpec, ids: np.ndarray) -> np.ndarray:
    lookup = np.zeros(int(ids.max()) + 1, np.uint8)
    for instance, class_id in spec.instance_classes.items():
        if instance < lookup.size:
            lookup[instance] = class_id
    return PALETTE[lookup[ids] % len(PALETTE)]


def outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    edge = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    out = image.copy()
    out[edge > 0] = (0, 255, 0)
    return out


def label(image: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(image)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def real_tiles(size: int) -> list[np.ndarray]:
    tiles = []
    for name in ("MT_Free", *KIND_TO_REAL.values()):
        image_path = sorted((REAL / name / "Imgs").glob("*.jpg"))[0]
        grey = cv2.resize(cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE), (size, size))
        mask = cv2.resize(cv2.imread(str(image_path.with_suffix(".png")), 0), (size, size)) >= 128
        tile = outline(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), mask)
        tiles.append(label(tile, f"real {name[3:].lower()}"))
    return tiles


def save(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{path}: {rgb.shape[1]}x{rgb.shape[0]}, {path.stat().st_size / 1e6:.2f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--size", type=int, default=200)
    args = parser.parse_args()
    renderer = BlenderRenderer()
    rows = []
    for name in SCENES:
        row = []
        for spec in defective_specs(name, 2, args.size, args.samples):
            result = renderer.render(spec, build_maps(spec))
            kinds = ",".join(sorted({m.kind for m in spec.marks}))
            row += [label(result.rgb, f"{name} {spec.material.pattern}"),
                    label(class_mask(spec, result.instance_ids), kinds)]  # fmt: skip
        rows.append(np.hstack(row))
    docs = REPO / "docs"
    save(docs / "scenes.png", np.vstack(rows))
    if REAL.is_dir():
        scene = REPO / "scenes" / "metal_tile.yaml"
        specs = good_specs(scene, 1, args.size, args.samples)
        specs += [defect_specs(scene, kind, 1, args.size, args.samples)[0] for kind in KIND_TO_REAL]
        tiles = []
        for spec, name in zip(specs, ("MT_Free", *KIND_TO_REAL.values()), strict=True):
            result = renderer.render(spec, build_maps(spec))
            grey = cv2.cvtColor(result.rgb, cv2.COLOR_RGB2GRAY)
            tile = outline(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), result.instance_ids > 0)
            tiles.append(label(tile, f"synthetic {name[3:].lower()}"))
        save(docs / "synthetic_vs_real.png", np.vstack([np.hstack(tiles), np.hstack(real_tiles(args.size))]))
    else:
        print(f"{REAL} not found: docs/synthetic_vs_real.png not written")
    renderer.close()


if __name__ == "__main__":
    main()
