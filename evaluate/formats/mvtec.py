"""MVTec AD: one category folder, read into a `Source` (the masks by the mask rule)."""

from __future__ import annotations

from pathlib import Path

from evaluate.formats.mask_rule import mask_item
from evaluate.formats.source import (
    Source,
    files_of,
    images_under,
    require_dir,
    unused,
)


def scan_mvtec(src: Path) -> Source:
    """MVTec AD category folder: train/good, test/<class>, ground_truth/<class>/<stem>_mask.png."""
    require_dir(src / "test", "the MVTec AD test/ folder")
    items, names = [], []
    for split_dir in ("train", "test"):
        for class_dir in sorted(p for p in (src / split_dir).glob("*") if p.is_dir()):
            name = class_dir.name.lower()
            if name != "good" and name not in names:
                names.append(name)
            for image in images_under(class_dir):
                mask = src / "ground_truth" / class_dir.name / f"{image.stem}_mask.png"
                items.append(mask_item(src, image, name, None if name == "good" else mask))
    skipped = unused(images_under(src / "ground_truth"), files_of(items), "a mask without its image in test/")
    return Source("mvtec", src, names, items, skipped)
