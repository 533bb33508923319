"""Contact sheets: rendered images with coloured mask overlays and class names, for tuning
a scene by eye (`synth preview`) and for docs pictures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from synth.annotations import Annotations
from synth.config import SceneConfig
from synth.layers import build_maps
from synth.photo import check_photo
from synth.render import RendererName, annotate, as_recorded, dataset_classes, make_renderer
from synth.scene import sample_scene, total_images
from synth.writers import atomic_write_png


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct RGB colour per class id (golden-angle hues)."""
    hue = int((class_id * 0.618034) % 1.0 * 180)  # golden-ratio hue steps
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[2]), int(bgr[1]), int(bgr[0])


def overlay(image: np.ndarray, annotations: Annotations, alpha: float = 0.45) -> np.ndarray:
    """The image with each instance tinted and outlined in its class colour, and named."""
    out = image.copy()
    by_id = annotations.class_by_id
    for inst in annotations.instances:
        colour = np.array(class_colour(inst.class_id), np.float32)
        mask = annotations.instance_map == inst.instance_id
        out[mask] = (out[mask] * (1 - alpha) + colour * alpha).astype(np.uint8)
        rings = [np.round(r - 0.5).astype(np.int32) for r in inst.rings]
        cv2.polylines(out, rings, True, tuple(int(c) for c in colour), 1)
        x, y, _, _ = inst.bbox
        cv2.putText(
            out,
            by_id[inst.class_id].name,
            (x, max(8, y - 2)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.3,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return out


def contact_sheet(tiles: list[np.ndarray], columns: int, captions: list[str] | None = None) -> np.ndarray:
    """Tiles (equal-size RGB) in a grid with an optional caption strip above each."""
    h, w = tiles[0].shape[:2]
    strip = 14 if captions else 0
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (h + strip), columns * w, 3), 24, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        top = r * (h + strip)
        sheet[top + strip : top + strip + h, c * w : (c + 1) * w] = cv2.resize(tile, (w, h))
        if captions:
            cv2.putText(
                sheet,
                captions[i],
                (c * w + 3, top + 10),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.35,
                (230, 230, 230),
                1,
                cv2.LINE_AA,
            )
    return sheet


def preview(
    config: SceneConfig,
    out: str | Path,
    n: int = 8,
    renderer: RendererName = "cycles",
    samples: int = 4,
) -> Path:
    """Render `n` images (defective ones first) at low sample count; image and overlay side by side."""
    check_photo(config, renderer)
    config = config.model_copy(update={"render": config.render.model_copy(update={"samples": samples})})
    classes = dataset_classes(config)
    specs = [sample_scene(config, i) for i in range(total_images(config))]
    specs = sorted(specs, key=lambda s: (s.good, s.index))[:n]
    view = make_renderer(renderer)
    tiles, captions = [], []
    for spec in specs:
        result = view.render(spec, build_maps(spec))
        annotations = annotate(spec, result, classes)
        rgb = as_recorded(result.rgb, spec)
        tiles += [rgb, overlay(rgb, annotations)]
        names = sorted({annotations.class_by_id[i.class_id].name for i in annotations.instances})
        captions += [f"#{spec.index} {spec.material.pattern}", ", ".join(names) or "good"]
    path = Path(out)
    atomic_write_png(path, contact_sheet(tiles, columns=4, captions=captions))
    return path
