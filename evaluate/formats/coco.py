"""COCO instances JSON (polygons, RLE or boxes), read into a `Source`.

The project writes COCO JSON (exact RLE masks) in `synth.writers.DatasetWriter` (`coco/<split>.json`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from evaluate.formats.source import (
    ImportFailure,
    LabelReader,
    Labels,
    Source,
    SourceItem,
    Unreadable,
    check_declared_size,
    check_in_image,
    check_names,
    from_masks,
    numbers,
    read_json,
    sample_id,
    short,
    with_lost_note,
)
from synth.annotations import ClassInfo


def scan_coco(annotation_file: Path, image_root: Path | None = None) -> Source:
    """COCO instances JSON; images are looked up relative to `image_root` (default: its folder).

    Every image, category and annotation reference is checked here, so that an annotation on an
    unknown image or category stops the import before anything is written.
    """
    try:
        coco = read_json(annotation_file)
    except Unreadable as e:
        raise ImportFailure(f"not a readable COCO JSON: {e}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco, dict) or not isinstance(coco.get(key), list):
            raise ImportFailure(f"{annotation_file}: COCO field '{key}' is missing (expected a list)")
    cats: dict[object, str] = {}
    for n, c in enumerate(coco["categories"]):
        where = f"{annotation_file}: categories[{n}]"
        cid, name = _field(c, "id", (int, str), where), _field(c, "name", str, where)
        if cid in cats:
            raise ImportFailure(f"{where}: category id {cid!r} is given twice")
        cats[cid] = name
    images: dict[object, dict] = {}
    for n, img in enumerate(coco["images"]):
        where = f"{annotation_file}: images[{n}]"
        iid = _field(img, "id", (int, str), where)
        _field(img, "file_name", str, where)
        if iid in images:
            raise ImportFailure(f"{where}: image id {iid!r} is given twice")
        images[iid] = img
    anns: dict[object, list[dict]] = defaultdict(list)
    for n, a in enumerate(coco["annotations"]):
        where = f"{annotation_file}: annotations[{n}]"
        iid, cid = _field(a, "image_id", (int, str), where), _field(a, "category_id", (int, str), where)
        if iid not in images:
            raise ImportFailure(f"{where}: image_id {iid!r} is not the id of any image in 'images'")
        if cid not in cats:
            raise ImportFailure(f"{where}: category_id {cid!r} is not among the category ids {list(cats)}")
        anns[iid].append({**a, "where": f"{where} (id {a['id']!r})" if "id" in a else where})
    order = sorted(cats, key=lambda k: (str(type(k)), k))
    names = [cats[k] for k in order]
    check_names(names, annotation_file)
    root = image_root or annotation_file.parent
    items = []
    for img in sorted(images.values(), key=lambda i: i["file_name"]):
        image_anns = anns.get(img["id"], [])
        stratum = cats[image_anns[0]["category_id"]] if image_anns else "good"
        rel = Path(img["file_name"])
        reader = _coco_reader(image_anns, cats, annotation_file, (img.get("height"), img.get("width")))
        items.append(SourceItem(sample_id(rel), root / rel, stratum, reader, label_file=annotation_file))
    return Source("coco", annotation_file, names, items)


def _field(record: object, key: str, kinds: tuple[type, ...] | type, where: str) -> Any:
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, kinds) or isinstance(value, bool):
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        expected = " or ".join({int: "a whole number", str: "a string"}[k] for k in kinds)
        raise ImportFailure(f"{where}: expected '{key}' ({expected}), got {short(value)}")
    return value


def _coco_reader(
    annotations: list[dict], cats: dict[object, str], file: Path, declared: tuple[object, object]
) -> LabelReader:
    """Masks of polygons (rasterised by pycocotools, COCO's own convention), RLE, or the box."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        check_declared_size(f"{file}: its image record", declared, size)
        masks = [(cats[a["category_id"]], _coco_mask(a, size, a["where"])) for a in annotations]
        return with_lost_note(from_masks(masks, size, classes), len(masks), file)

    return read


def _coco_mask(a: dict, size: tuple[int, int], where: str) -> np.ndarray:
    """One annotation as a boolean mask, its coordinates checked first: pycocotools reads out of
    bounds (or blows up) on malformed RLE and non-finite or huge polygon coordinates."""
    from pycocotools import mask as mask_utils

    h, w = size
    seg = a.get("segmentation")
    if seg and isinstance(seg, dict):
        return _rle_mask(seg, size, where)
    if seg:
        polygons = [numbers(r, f"{where}: segmentation") for r in (seg if isinstance(seg, list) else [])]
        if not polygons or any(p.ndim != 1 or len(p) < 6 or len(p) % 2 for p in polygons):
            raise Unreadable(
                f"{where}: expected an RLE object or polygons [[x, y, ...], ...] of an even number "
                f"(>= 6) of coordinates, got {short(seg)}"
            )
        check_in_image(np.concatenate(polygons), size, where)
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w))).astype(bool)
    box = numbers(a.get("bbox"), f"{where}: bbox") if "bbox" in a else np.zeros(0)
    if box.shape != (4,) or box[2] <= 0 or box[3] <= 0:
        raise Unreadable(f"{where}: no segmentation, and no bbox [x, y, width > 0, height > 0]")
    x, y, bw, bh = box
    check_in_image(np.array([x, y, x + bw, y + bh]), size, where)
    mask = np.zeros(size, bool)
    mask[int(y) : int(np.ceil(y + bh)), int(x) : int(np.ceil(x + bw))] = True
    return mask


def _rle_mask(seg: dict, size: tuple[int, int], where: str) -> np.ndarray:
    """A COCO RLE (compressed string or list of counts, column-major) decoded and checked."""
    h, w = size
    if seg.get("size") != [h, w]:
        raise Unreadable(f"{where}: RLE size {short(seg.get('size'))} is not the image's [{h}, {w}]")
    counts = seg.get("counts")
    if isinstance(counts, str):
        counts = _rle_string_counts(counts, where)
    if (
        not isinstance(counts, list)
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        or sum(counts) != h * w
    ):
        raise Unreadable(f"{where}: RLE counts must be whole numbers >= 0 that add up to {h}x{w} px")
    runs = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
    return runs.reshape(w, h).T


def _rle_string_counts(text: str, where: str) -> list[int]:
    """The counts of COCO's compressed RLE string (pycocotools' rleFrString, with bounds checks)."""
    counts: list[int] = []
    p = 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            c = ord(text[p]) - 48 if p < len(text) else -1
            if not 0 <= c < 64:
                raise Unreadable(f"{where}: RLE counts string is malformed at character {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        counts.append(x + counts[-2] if len(counts) > 2 else x)
    return counts
