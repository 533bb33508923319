"""Class folders (magnetic tile): images and their masks in one folder per class, read into a `Source`."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from evaluate.formats.mask_rule import mask_item
from evaluate.formats.source import (
    ImportFailure,
    Source,
    check_names,
    files_of,
    images_under,
    is_good,
    require_dir,
    unused,
)
from synth.images import IMAGE_SUFFIXES


def scan_class_folders(src: Path) -> Source:
    """Top-level class folders holding images and their masks (same stem, or <stem>_mask)."""
    require_dir(src, "a folder of class folders")
    folders = sorted(p for p in src.iterdir() if p.is_dir())
    if not folders:
        raise ImportFailure(f"{src}: expected one folder per class, found no folder")
    prefix = _common_prefix([f.name for f in folders])
    items, names, files = [], [], []
    for folder in folders:
        name = "good" if is_good(folder.name, prefix) else folder.name[len(prefix) :].lower()
        if name != "good":
            names.append(name)
        items += [mask_item(src, image, name, mask) for image, mask in _image_mask_pairs(folder)]
        files += images_under(folder)
    check_names(names, src)
    loose = [p for p in sorted(src.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    skipped = unused(loose, set(), "an image outside the class folders") + unused(
        files, files_of(items), "a mask without its image"
    )
    return Source("folders", src, names, items, skipped)


def _common_prefix(names: Sequence[str]) -> str:
    """The shared prefix up to and including a '_' (as MT_ of MT_Blowhole), or ''."""
    if len(names) < 2:
        return ""
    shared = names[0]
    for n in names[1:]:
        while not n.startswith(shared):
            shared = shared[:-1]
    return shared[: shared.rfind("_") + 1]


def _image_mask_pairs(folder: Path) -> list[tuple[Path, Path | None]]:
    """Pair each image with its mask: `<stem>_mask.*` / `<stem>_gt.*`, or the .png beside a
    non-png image of the same stem."""
    by_stem: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for f in images_under(folder):
        by_stem[(f.parent, f.stem)].append(f)
    pairs: list[tuple[Path, Path | None]] = []
    for (parent, stem), group in sorted(by_stem.items()):
        if re.search(r"_(mask|gt)$", stem):
            continue
        tagged = by_stem.get((parent, stem + "_mask"), []) + by_stem.get((parent, stem + "_gt"), [])
        if tagged:
            pairs.extend((image, tagged[0]) for image in group)
        elif len(group) == 1:
            pairs.append((group[0], None))
        else:
            pngs = [f for f in group if f.suffix.lower() == ".png"]
            others = [f for f in group if f.suffix.lower() != ".png"]
            if len(pngs) != 1 or len(others) != 1:
                raise ImportFailure(
                    f"cannot tell image from mask among {', '.join(map(str, group))}: "
                    "expected one image and one .png mask of the same name"
                )
            pairs.append((others[0], pngs[0]))
    return pairs
