"""Image folders beside one mask folder (AITEX, the leather set), read into a `Source`; the class
is found in each image's name (--class-pattern) and renamed by --class-map."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from evaluate.formats.mask_rule import good_mask_reader, mask_reader
from evaluate.formats.source import (
    ImportFailure,
    Source,
    SourceItem,
    check_names,
    images_under,
    is_good,
    require_dir,
    sample_id,
    skip,
    unused,
)
from synth import aitex
from synth.errors import ConfigError

DEFAULT_CLASS_PATTERN = r"^([A-Za-z]+)"  # masks: the class is the leading letters of the name
CLASS_MAPS = {"aitex": aitex.DEFECT_CLASSES}  # tables that --class-map names (one home each)


def _class_regex(pattern: str) -> re.Pattern[str]:
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"--class-pattern {pattern!r} is not a regular expression ({e})") from None
    if regex.groups < 1:
        raise ConfigError(f"--class-pattern {pattern!r} has no group: expected one, such as '^([a-z]+)_'")
    return regex


def _class_renamer(entries: Sequence[str]) -> Callable[[str], str]:
    """The class name of a name found by --class-pattern: renamed by the tables (CLASS_MAPS) and
    old=new pairs of --class-map, later entries first; a name no entry knows is kept."""
    table: dict[str, str] = {}
    for entry in entries:
        if entry in CLASS_MAPS:
            table.update(CLASS_MAPS[entry])
        elif (pair := [part.strip() for part in entry.split("=")]) and len(pair) == 2 and all(pair):
            table[pair[0]] = pair[1]
        else:
            raise ConfigError(
                f"--class-map {entry!r}: expected a table ({', '.join(CLASS_MAPS)}) or a pair old=new"
            )
    return lambda name: table.get(name, name)


def scan_masks(
    src: Path, class_pattern: str = DEFAULT_CLASS_PATTERN, class_map: Sequence[str] = ()
) -> Source:
    """Image folders and one mask folder side by side (AITEX, the leather set): each image's
    masks are found by name in the mask folder, its class in its own name."""
    require_dir(src, "a folder holding image folders and one mask folder")
    folders = sorted(p for p in src.iterdir() if p.is_dir())
    mask_dirs = [f for f in folders if "mask" in f.name.lower()]
    image_dirs = [f for f in folders if f not in mask_dirs]
    if len(mask_dirs) != 1 or not image_dirs:
        raise ImportFailure(
            f"{src}: expected image folders and one mask folder (a name containing 'mask') beside "
            f"them, found {len(mask_dirs)} mask folder(s) and {len(image_dirs)} other folder(s)"
        )
    mask_dir, regex, rename = mask_dirs[0], _class_regex(class_pattern), _class_renamer(class_map)
    masks_of: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for mask in images_under(mask_dir):
        rel = mask.relative_to(mask_dir)
        masks_of[(rel.parent, re.sub(r"_mask\d*$", "", rel.stem))].append(mask)
    items, skipped, used, renamed = [], [], set(), defaultdict(int)
    for folder in image_dirs:
        good = is_good(re.sub(r"[_\s-]*(images|imgs)$", "", folder.name, flags=re.IGNORECASE), "")
        for image in images_under(folder):
            rel = image.relative_to(folder)
            masks = masks_of.get((rel.parent, rel.stem), [])
            used.update(masks)
            match = None if good else regex.search(image.stem)
            if good:
                reader, name = good_mask_reader(masks, image, rescale=True), "good"
            elif match is None or not match.group(1):
                why = f"its name does not match --class-pattern {class_pattern!r}, so its class is unknown"
                skipped.append(skip(image, why))
                continue
            elif not masks:
                expected = mask_dir / rel.parent / f"{rel.stem}.*, {rel.stem}_mask.* or {rel.stem}_mask<k>.*"
                why = f"no mask found ({expected}); an image of a defect folder is never imported as good"
                skipped.append(skip(image, why))
                continue
            else:
                name = rename(match.group(1))
                renamed[(match.group(1), name)] += 1
                reader = mask_reader(masks, image, name, rescale=True)
            label_file = masks[0] if masks else None
            items.append(SourceItem(sample_id(rel), image, name, reader, label_file=label_file))
    names = sorted({i.stratum for i in items} - {"good"})
    check_names(names, f"{src} (class names from --class-pattern and --class-map)")
    notes = [
        f"class {raw!r} of {n} image(s) is named {name!r} by --class-map"
        for (raw, name), n in sorted(renamed.items())
        if raw != name
    ]
    skipped += unused(images_under(mask_dir), used, "a mask without its image")
    return Source("masks", src, names, items, skipped, notes)
