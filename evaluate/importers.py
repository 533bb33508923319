"""Importers of real datasets into the canonical layout (docs/CONTRACTS.md): `evaluate import`.

Every format is reduced to one thing, a `Source`: its class names, a list of `SourceItem`s
(an image file plus a function that reads its labels as `Annotations`) and the files passed
over while scanning, and is then written by one function through `synth.writers.DatasetWriter`.
The layout each format expects is described in the help of `evaluate import` (`import_data`).

Images may be grey, grey+alpha, RGB(A), 8 or 16 bit: they are stored as 8-bit RGB (alpha
dropped, 16 bit scaled by 255/65535). Source splits are not kept: every importer re-splits its
images into train/val/test with a seed, stratified by class and optionally by a group taken
from the file name (such as magnetic_tile's `exp<k>` capture condition).

No label is changed behind the user's back, because a wrong label is worse than a missing one:
- a problem of the whole source (a missing folder, a class id or category that is not
  declared, a mask of another size than its image) stops the import before anything is
  written, with a message naming the file and what was expected;
- a problem of one sample (an unreadable image, a malformed or out-of-range label line, a shape
  this importer cannot draw, a defect class image with empty labels) skips that sample; each
  skip is listed with its reason on stderr and in `import_report.json`;
- a rule that decides labels is applied as documented and every file it affects is listed as a
  note: mask pixels are defect from half the value range up (`read_binary_mask`), and objects
  that cover no pixel of their own are not in the labels.

The `masks` format (image folders beside one mask folder, the class in the file name: AITEX,
the leather set) treats a mask of another size as a problem of its sample: repaired when it is
the image scaled by one factor, else skipped. Any format's images may be cut into samples
(`Cutting`, `cut_item`): cropped to a valid region found by a stated rule, then tiled; every
crop, dropped tile and label pixel left out is listed, and all tiles of one image share a split.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import cv2
import numpy as np
import yaml
from PIL import Image
from tqdm import tqdm

from synth import aitex
from synth.annotations import AnnotationError, Annotations, ClassInfo
from synth.config import SPLITS
from synth.errors import ConfigError, DataError
from synth.images import IMAGE_SUFFIXES, UnreadableImage, decode_file, to_rgb8
from synth.images import read_image as read_image_file
from synth.outputs import OutputPath
from synth.tiles import Tile, crop_annotations, overlap_fraction, tiles_within
from synth.writers import DatasetWriter, atomic_write_json
from train.options import Finite

GOOD_NAMES = {"good", "free", "ok", "normal", "defect_free", "defectfree", "nodefect", "no_defect"}
FORMATS = ("mvtec", "folders", "masks", "yolo", "coco", "labelme")
DEFAULT_CLASS_PATTERN = r"^([A-Za-z]+)"  # masks: the class is the leading letters of the name
CLASS_MAPS = {"aitex": aitex.DEFECT_CLASSES}  # tables that --class-map names (one home each)
YOLO_TOLERANCE = 1e-5  # normalised YOLO coordinates may leave [0, 1] by float rounding only
PIXEL_TOLERANCE = 1.0  # COCO coordinates may leave the image by one pixel (vertices on its edge)
LABELME_POINTS = {"polygon": (3, None), "rectangle": (2, 2), "circle": (2, 2)}  # (min, max) points
EXIF_ORIENTATION = 0x0112  # the EXIF tag; values 5 to 8 turn the stored pixels a quarter turn
QUARTER_TURNS = (5, 6, 7, 8)

Labels = tuple[Annotations, list[str]]  # an item's annotations and the notes on rules applied
# Reads an item's labels, given the image size (h, w) and the dataset's classes.
LabelReader = Callable[[tuple[int, int], tuple[ClassInfo, ...]], Labels]


class ImportFailure(DataError):
    """A user-facing import error: the message names the file(s) and what was expected."""


class Unreadable(Exception):
    """A file that cannot be used; its sample is skipped and listed in the report."""


@dataclass(frozen=True)
class SourceItem:
    """One source image, the class it is stratified by, and how to read its labels."""

    id: str
    image: Path
    stratum: str
    read_labels: LabelReader
    image_in_json: bool = False  # `image` is a LabelMe JSON whose base64 imageData is the image
    label_file: Path | None = None  # the mask, label text or JSON, named in skips and notes


@dataclass(frozen=True)
class Source:
    """A scanned source dataset: the path it was scanned from, class names (ids 1.. in this
    order), its images, the files passed over while scanning ({"file", "reason"}) and notes."""

    format: str
    src: Path
    class_names: list[str]
    items: list[SourceItem]
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # rules that decided labels while scanning


# ----------------------------------------------------------------- reading files


def read_image(path: Path, in_json: bool = False) -> np.ndarray:
    """Any grey / grey+alpha / RGB(A), 8 or 16 bit image file as 8-bit RGB.

    `in_json`: `path` is a LabelMe JSON carrying the encoded image as base64 `imageData`; it is
    decoded here, when the image is needed, so that scanning holds no pixels and leaves no files.
    """
    try:
        if not in_json:
            return read_image_file(path)
        img = _decode_embedded(path)
        if img is None:
            raise Unreadable(f"{path}: not a readable image")
        return to_rgb8(img, path)
    except UnreadableImage as e:
        raise Unreadable(str(e)) from None


def _decode(path: Path) -> np.ndarray | None:
    try:
        return decode_file(path)
    except UnreadableImage as e:
        raise Unreadable(str(e)) from None


def _decode_embedded(js: Path) -> np.ndarray | None:
    try:
        data = base64.b64decode(_read_json(js)["imageData"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None


def _read_text(path: Path) -> str:
    """A label file's text (UTF-8, a byte-order mark allowed); `Unreadable` names the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise Unreadable(f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})") from None
    except OSError as e:
        raise Unreadable(f"{path}: cannot be read ({e.strerror or e})") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise Unreadable(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def _numbers(value: object, where: str) -> np.ndarray:
    """`value` (a number or nested lists of them) as floats, if every one is finite."""
    try:
        array = np.asarray(value, np.float64) if not isinstance(value, str | bytes) else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.size == 0 or not np.isfinite(array).all():
        raise Unreadable(f"{where}: expected finite numbers, got {_short(value)}")
    return array


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _skip(file: Path, reason: str) -> dict[str, str]:
    return {"file": str(file), "reason": reason}


def _size_mismatch(mask: Path, mask_size: tuple[int, int], image: Path, size: tuple[int, int]) -> str:
    return (
        f"mask {mask} is {mask_size[1]}x{mask_size[0]} px but its image "
        f"{image} is {size[1]}x{size[0]} px; they must have the same size"
        + (_turned_by_exif(image) if tuple(mask_size) == tuple(size)[::-1] else "")
    )


def _turned_by_exif(image: Path) -> str:
    """Why a mask may have an image's size turned: drawn on the photo as a viewer shows it."""
    try:
        with Image.open(image) as im:
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError, ImportError):
        return ""
    if orientation not in QUARTER_TURNS:
        return ""
    return (
        f" (the image's EXIF orientation {orientation} turns it a quarter turn for viewing, and the "
        "mask matches the turned view; masks are read against the stored pixels: turn the mask back)"
    )


def _header_size(path: Path) -> tuple[int, int] | None:
    """(h, w) from the file header without decoding pixels; None when PIL cannot tell."""
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    except ImportError:  # ultralytics' patched Image.open tries a HEIF plugin on unknown files
        return None


def _check_same_size(mask: Path, image: Path) -> None:
    """Checked while scanning, so that a mismatch stops the import before anything is written."""
    mask_size, size = _header_size(mask), _header_size(image)
    if mask_size and size and mask_size != size:
        raise ImportFailure(_size_mismatch(mask, mask_size, image, size))


def _check_declared_size(where: str, declared: tuple[object, object], size: tuple[int, int]) -> None:
    """Labels drawn for another image size would land in the wrong place: skip the sample."""
    if all(isinstance(v, int) for v in declared) and tuple(declared) != size:
        raise Unreadable(
            f"{where}: says its image is {declared[1]}x{declared[0]} px, "
            f"but the image is {size[1]}x{size[0]} px"
        )


def read_binary_mask(
    mask_path: Path, image_path: Path, size: tuple[int, int], rescale: bool = False
) -> tuple[np.ndarray, list[str]]:
    """A mask file as booleans, checked against the size (h, w) of its image, and its notes.

    The rule: a pixel is defect when its value is at least half the range (128 of 255, 32768 of
    65535; the brightest colour channel counts; in a mask with alpha, a pixel less than half
    opaque is background), so anti-aliased edges keep the core of their region, as the real
    masks here need. A region of non-zero pixels that lies wholly
    below the threshold (a soft brush stroke, a grey second level) is background, and the mask
    gets a note, so that no region vanishes unseen.

    `rescale`: a mask of another size is repaired when that is safe, i.e. when it is the image
    scaled by one factor (the same aspect ratio exactly): its values are resized to the image
    (area-averaged when shrinking, bilinear when enlarging) before the threshold, with a note.
    Any other size is a skip: padding or cropping it would guess where the labels lie.
    """
    if not mask_path.is_file():
        raise Unreadable(f"{image_path}: its mask {mask_path} does not exist")
    mask = _decode(mask_path)
    if mask is None or mask.dtype not in (np.uint8, np.uint16):
        raise Unreadable(f"{mask_path}: not a readable 8 or 16 bit mask image")
    threshold = (int(np.iinfo(mask.dtype).max) + 1) // 2
    if mask.ndim == 3:
        # A pixel less than half opaque is background, whatever its colour (a transparent layer).
        opaque = mask[..., -1] >= threshold if mask.shape[2] in (2, 4) else True
        mask = (mask[..., :3].max(axis=2) if mask.shape[2] >= 3 else mask[..., 0]) * opaque
    notes = []
    if mask.shape != size:
        (mh, mw), (h, w) = mask.shape, size
        if not rescale:
            raise Unreadable(_size_mismatch(mask_path, mask.shape, image_path, size))
        if mh * w != mw * h:
            raise Unreadable(
                f"mask {mask_path} is {mw}x{mh} px but its image {image_path} is {w}x{h} px: another "
                "aspect ratio, so it is not repaired (padding or cropping would guess where its labels lie)"
            )
        shrink = mh > h
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        notes.append(f"{mask_path}: {mw}x{mh} px, resized to its image's {w}x{h} px (the same aspect ratio)")
    binary = mask >= threshold
    return binary, notes + _faint_note(mask, binary, threshold, mask_path)


def _faint_note(mask: np.ndarray, binary: np.ndarray, threshold: int, path: Path) -> list[str]:
    """Name the regions (8-connected non-zero pixels) that the threshold turns into background."""
    if not (mask[~binary] > 0).any():
        return []
    _, regions = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
    dropped = (regions > 0) & ~np.isin(regions, np.unique(regions[binary]))
    if not dropped.any():
        return []
    return [
        f"{path}: {len(np.unique(regions[dropped]))} region(s) of {int(dropped.sum())} px with values "
        f"below {threshold} (at most {int(mask[dropped].max())}) are background by the mask rule"
    ]


def from_masks(
    masks: Sequence[tuple[str, np.ndarray]], size: tuple[int, int], classes: tuple[ClassInfo, ...]
) -> Annotations:
    """Annotations of instance masks given as (class name, boolean mask); later ones on top."""
    class_id = {c.name: c.id for c in classes}
    instance_map = np.zeros(size, np.uint16)
    for n, (_, mask) in enumerate(masks, 1):
        instance_map[mask] = n
    present = set(np.unique(instance_map).tolist())
    instance_classes = {n: class_id[name] for n, (name, _) in enumerate(masks, 1) if n in present}
    return Annotations.from_instance_map(instance_map, instance_classes, classes)


def _with_lost_note(annotations: Annotations, n_objects: int, label_file: Path) -> Labels:
    """The annotations, with a note when some of the file's objects cover no pixel of their own."""
    lost = n_objects - len(annotations.instances)
    if lost <= 0:
        return annotations, []
    return annotations, [
        f"{label_file}: {lost} of {n_objects} objects cover no pixel of their own (smaller than a "
        "pixel, outside the image, or hidden under later ones) and are not in the labels"
    ]


def _read_union(
    masks: Sequence[Path], image: Path, size: tuple[int, int], rescale: bool
) -> tuple[np.ndarray, list[str]]:
    """The union of an image's masks (one, or several such as x_mask1 and x_mask2), and notes."""
    union, notes = np.zeros(size, bool), []
    for mask in masks:
        binary, more = read_binary_mask(mask, image, size, rescale)
        union |= binary
        notes += more
    if len(masks) > 1:
        notes.append(f"{image}: its {len(masks)} masks {', '.join(m.name for m in masks)} are joined (union)")
    return union, notes


def _mask_reader(masks: Sequence[Path], image: Path, name: str, rescale: bool = False) -> LabelReader:
    """Class masks: each 8-connected component of their union becomes an instance of `name`."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        class_id = next(c.id for c in classes if c.name == name)
        binary, notes = _read_union(masks, image, size, rescale)
        return Annotations.from_semantic_mask(binary.astype(np.uint8) * class_id, classes), notes

    return read


def _good_mask_reader(masks: Sequence[Path], image: Path, rescale: bool = False) -> LabelReader:
    """Masks beside a good-class image must be empty: a defect there contradicts its folder."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        binary, notes = _read_union(masks, image, size, rescale)
        if binary.any():
            raise Unreadable(
                f"{', '.join(map(str, masks))}: marks {int(binary.sum())} px as defect, "
                "but its image is in a good-class folder"
            )
        return _no_labels(size, classes)[0], notes

    return read


def _missing_mask(image: Path) -> LabelReader:
    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        raise Unreadable(f"{image}: no mask beside it in a defect class folder")

    return read


def _no_labels(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
    return Annotations.from_instance_map(np.zeros(size, np.uint16), {}, classes), []


def _mask_item(src: Path, image: Path, stratum: str, mask: Path | None) -> SourceItem:
    """An image labelled by a class mask, or, in the good class, by no mask or an empty one."""
    if mask is not None and mask.is_file():
        _check_same_size(mask, image)
    if stratum == "good":
        reader = _no_labels if mask is None else _good_mask_reader([mask], image)
    else:
        reader = _missing_mask(image) if mask is None else _mask_reader([mask], image, stratum)
    return SourceItem(_sample_id(image.relative_to(src)), image, stratum, reader, label_file=mask)


def _unused(files: Sequence[Path], used: set[Path | None], why: str) -> list[dict[str, str]]:
    """Files that no item reads (such as a mask whose image is missing), listed as skipped."""
    return [_skip(f, why) for f in files if f not in used]


def _files_of(items: Sequence[SourceItem]) -> set[Path | None]:
    return {i.image for i in items} | {i.label_file for i in items}


def _sample_id(rel: Path) -> str:
    """A file-system-safe sample id from a path relative to the source root."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(rel.with_suffix("").parts))


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ImportFailure(f"{path}: expected {what} (a folder), found none")


def _check_names(names: Sequence[str], where: object) -> None:
    """Class names become folders of the anomaly view, where `good` means defect-free."""
    for name in names:
        if name.lower() == "good" or name.strip() in ("", ".", "..") or re.search(r"[/\\]", name):
            raise ImportFailure(
                f"{where}: class name {name!r} cannot be used: expected a non-empty name without "
                "'/' or '\\', and not 'good' (which means defect-free)"
            )
    repeated = _first_repeat(names)
    if repeated is not None:
        raise ImportFailure(f"{where}: class name {repeated!r} is given twice")


def _first_repeat(values: Sequence[str]) -> str | None:
    seen: set[str] = set()
    return next((v for v in values if v in seen or seen.add(v)), None)


# ----------------------------------------------------------------- formats


def scan_mvtec(src: Path) -> Source:
    """MVTec AD category folder: train/good, test/<class>, ground_truth/<class>/<stem>_mask.png."""
    _require_dir(src / "test", "the MVTec AD test/ folder")
    items, names = [], []
    for split_dir in ("train", "test"):
        for class_dir in sorted(p for p in (src / split_dir).glob("*") if p.is_dir()):
            name = class_dir.name.lower()
            if name != "good" and name not in names:
                names.append(name)
            for image in _images_under(class_dir):
                mask = src / "ground_truth" / class_dir.name / f"{image.stem}_mask.png"
                items.append(_mask_item(src, image, name, None if name == "good" else mask))
    skipped = _unused(
        _images_under(src / "ground_truth"), _files_of(items), "a mask without its image in test/"
    )
    return Source("mvtec", src, names, items, skipped)


def scan_class_folders(src: Path) -> Source:
    """Top-level class folders holding images and their masks (same stem, or <stem>_mask)."""
    _require_dir(src, "a folder of class folders")
    folders = sorted(p for p in src.iterdir() if p.is_dir())
    if not folders:
        raise ImportFailure(f"{src}: expected one folder per class, found no folder")
    prefix = _common_prefix([f.name for f in folders])
    items, names, files = [], [], []
    for folder in folders:
        name = "good" if _is_good(folder.name, prefix) else folder.name[len(prefix) :].lower()
        if name != "good":
            names.append(name)
        items += [_mask_item(src, image, name, mask) for image, mask in _image_mask_pairs(folder)]
        files += _images_under(folder)
    _check_names(names, src)
    loose = [p for p in sorted(src.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    skipped = _unused(loose, set(), "an image outside the class folders") + _unused(
        files, _files_of(items), "a mask without its image"
    )
    return Source("folders", src, names, items, skipped)


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


def _is_good(folder: str, prefix: str) -> bool:
    """A good-class folder: a good name, also after the shared prefix or any `<prefix>_`, so
    that `MT_Free` is good even when it is the only folder."""
    key = re.sub(r"[\s-]+", "_", folder.lower())
    return bool({key, key[len(prefix) :], key.split("_", 1)[-1]} & GOOD_NAMES)


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
    for f in _images_under(folder):
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


def scan_masks(
    src: Path, class_pattern: str = DEFAULT_CLASS_PATTERN, class_map: Sequence[str] = ()
) -> Source:
    """Image folders and one mask folder side by side (AITEX, the leather set): each image's
    masks are found by name in the mask folder, its class in its own name."""
    _require_dir(src, "a folder holding image folders and one mask folder")
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
    for mask in _images_under(mask_dir):
        rel = mask.relative_to(mask_dir)
        masks_of[(rel.parent, re.sub(r"_mask\d*$", "", rel.stem))].append(mask)
    items, skipped, used, renamed = [], [], set(), defaultdict(int)
    for folder in image_dirs:
        good = _is_good(re.sub(r"[_\s-]*(images|imgs)$", "", folder.name, flags=re.IGNORECASE), "")
        for image in _images_under(folder):
            rel = image.relative_to(folder)
            masks = masks_of.get((rel.parent, rel.stem), [])
            used.update(masks)
            match = None if good else regex.search(image.stem)
            if good:
                reader, name = _good_mask_reader(masks, image, rescale=True), "good"
            elif match is None or not match.group(1):
                why = f"its name does not match --class-pattern {class_pattern!r}, so its class is unknown"
                skipped.append(_skip(image, why))
                continue
            elif not masks:
                expected = mask_dir / rel.parent / f"{rel.stem}.*, {rel.stem}_mask.* or {rel.stem}_mask<k>.*"
                why = f"no mask found ({expected}); an image of a defect folder is never imported as good"
                skipped.append(_skip(image, why))
                continue
            else:
                name = rename(match.group(1))
                renamed[(match.group(1), name)] += 1
                reader = _mask_reader(masks, image, name, rescale=True)
            label_file = masks[0] if masks else None
            items.append(SourceItem(_sample_id(rel), image, name, reader, label_file=label_file))
    names = sorted({i.stratum for i in items} - {"good"})
    _check_names(names, f"{src} (class names from --class-pattern and --class-map)")
    notes = [
        f"class {raw!r} of {n} image(s) is named {name!r} by --class-map"
        for (raw, name), n in sorted(renamed.items())
        if raw != name
    ]
    skipped += _unused(_images_under(mask_dir), used, "a mask without its image")
    return Source("masks", src, names, items, skipped, notes)


def scan_yolo(src: Path, names: Sequence[str] | None = None) -> Source:
    """YOLO detect or segment: every image under images/ with labels/…/<stem>.txt beside it.

    Class names come from `names`, else from a data yaml in `src`, else class0, class1, … up
    to the largest class id. Every label line is checked here, so that a class id outside the
    names stops the import before anything is written.
    """
    _require_dir(src / "images", "YOLO images/")
    _require_dir(src / "labels", "YOLO labels/ beside images/ (labels/<same path as the image>.txt)")
    images = _images_under(src / "images")
    label_of = {
        image: src / "labels" / image.relative_to(src / "images").with_suffix(".txt") for image in images
    }
    if images and not any(label.is_file() for label in label_of.values()):
        raise ImportFailure(
            f"{src / 'labels'}: none of the {len(images)} images under {src / 'images'} has a label "
            f"file; expected labels/<same path>.txt, such as {label_of[images[0]]}"
        )
    class_names, origin = (list(names), "--names") if names else _yolo_yaml_names(src)
    _check_names(class_names, origin)
    skipped = _unused(
        sorted((src / "labels").rglob("*.txt")), set(label_of.values()), "a label file without an image"
    )
    objects: dict[Path, list[tuple[int, int]]] = {}
    for image, label in label_of.items():
        try:
            objects[image] = _yolo_objects(label) if label.is_file() else []
        except Unreadable as e:
            skipped.append(_skip(label, str(e)))
    found = [(label_of[image], line, c) for image, lines in objects.items() for line, c in lines]
    if not class_names:
        class_names = [f"class{c}" for c in range(max((c + 1 for *_, c in found), default=0))]
        origin = "the label files (no --names and no data yaml with names)"
    for label, line, c in found:
        if not 0 <= c < len(class_names):
            raise ImportFailure(
                f"{label}:{line}: class {c} is not among the {len(class_names)} class names from "
                f"{origin} ({', '.join(f'{i}: {n}' for i, n in enumerate(class_names))}); "
                f"expected 0..{len(class_names) - 1}"
            )
    items = []
    for image, lines in objects.items():
        stratum = class_names[lines[0][1]] if lines else "good"
        sid = _sample_id(image.relative_to(src / "images"))
        label = label_of[image]
        items.append(SourceItem(sid, image, stratum, _yolo_reader(label, len(lines)), label_file=label))
    return Source("yolo", src, class_names, items, skipped)


def _yolo_objects(label: Path) -> list[tuple[int, int]]:
    """(line number, class id) of each object of a YOLO label file, after checking every value:
    a whole-number class, then 4 box or an even number (>= 6) of polygon coordinates, finite
    and normalised to [0, 1] (a box with its edges inside the image). Nothing is clipped."""
    objects = []
    for number, line in enumerate(_read_text(label).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label}:{number}"
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise Unreadable(f"{where}: expected numbers, got {line.strip()!r}") from None
        coords = np.array(values[1:])
        if not values[0].is_integer():
            raise Unreadable(f"{where}: class {fields[0]} is not a whole number")
        if len(coords) != 4 and (len(coords) < 6 or len(coords) % 2):
            raise Unreadable(
                f"{where}: expected 4 box values or an even number (>= 6) of polygon values, "
                f"got {len(coords)}"
            )
        if len(coords) == 4:
            half = coords[2:] / 2
            if not (coords[2] > 0 and coords[3] > 0):
                raise Unreadable(f"{where}: box width and height must be > 0, got {line.strip()!r}")
            coords = np.concatenate([coords[:2] - half, coords[:2] + half])
        if not np.isfinite(coords).all():
            raise Unreadable(f"{where}: coordinates must be finite numbers, got {line.strip()!r}")
        if coords.min() < -YOLO_TOLERANCE or coords.max() > 1 + YOLO_TOLERANCE:
            raise Unreadable(
                f"{where}: coordinates must lie in [0, 1] (normalised to the image), got {line.strip()!r}"
            )
        objects.append((number, int(values[0])))
    return objects


def _yolo_yaml_names(src: Path) -> tuple[list[str], str]:
    """Class names from an Ultralytics data yaml in the root (names: list or {id: name}), and the
    yaml's path; ([], "") when there is none."""
    for data in sorted(src.glob("*.yaml")) + sorted(src.glob("*.yml")):
        try:
            loaded = yaml.safe_load(_read_text(data))
        except Unreadable as e:
            raise ImportFailure(str(e)) from None
        except yaml.YAMLError as e:
            raise ImportFailure(f"{data}: not valid YAML ({e})") from None
        names = loaded.get("names") if isinstance(loaded, dict) else None
        if isinstance(names, dict):
            if set(names) != set(range(len(names))):
                raise ImportFailure(
                    f"{data}: the keys of 'names' must be the class ids 0..{len(names) - 1}, "
                    f"got {list(names)}"
                )
            return [str(names[k]) for k in range(len(names))], str(data)
        if isinstance(names, list):
            return [str(n) for n in names], str(data)
        if names is not None:
            raise ImportFailure(f"{data}: 'names' must be a list or a mapping id: name, got {_short(names)}")
    return [], ""


def _yolo_reader(label: Path, n_objects: int) -> LabelReader:
    """Reads a label file checked by `_yolo_objects`; a missing file is a good image (YOLO's rule)."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        if not label.is_file():
            return _no_labels(size, classes)
        try:
            annotations = Annotations.from_yolo(_read_text(label), size, classes, source=str(label))
        except AnnotationError as e:
            raise Unreadable(str(e)) from e
        return _with_lost_note(annotations, n_objects, label)

    return read


def scan_coco(annotation_file: Path, image_root: Path | None = None) -> Source:
    """COCO instances JSON; images are looked up relative to `image_root` (default: its folder).

    Every image, category and annotation reference is checked here, so that an annotation on an
    unknown image or category stops the import before anything is written.
    """
    try:
        coco = _read_json(annotation_file)
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
    _check_names(names, annotation_file)
    root = image_root or annotation_file.parent
    items = []
    for img in sorted(images.values(), key=lambda i: i["file_name"]):
        image_anns = anns.get(img["id"], [])
        stratum = cats[image_anns[0]["category_id"]] if image_anns else "good"
        rel = Path(img["file_name"])
        reader = _coco_reader(image_anns, cats, annotation_file, (img.get("height"), img.get("width")))
        items.append(SourceItem(_sample_id(rel), root / rel, stratum, reader, label_file=annotation_file))
    return Source("coco", annotation_file, names, items)


def _field(record: object, key: str, kinds: tuple[type, ...] | type, where: str) -> Any:
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, kinds) or isinstance(value, bool):
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        expected = " or ".join({int: "a whole number", str: "a string"}[k] for k in kinds)
        raise ImportFailure(f"{where}: expected '{key}' ({expected}), got {_short(value)}")
    return value


def _coco_reader(
    annotations: list[dict], cats: dict[object, str], file: Path, declared: tuple[object, object]
) -> LabelReader:
    """Masks of polygons (rasterised by pycocotools, COCO's own convention), RLE, or the box."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        _check_declared_size(f"{file}: its image record", declared, size)
        masks = [(cats[a["category_id"]], _coco_mask(a, size, a["where"])) for a in annotations]
        return _with_lost_note(from_masks(masks, size, classes), len(masks), file)

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
        polygons = [_numbers(r, f"{where}: segmentation") for r in (seg if isinstance(seg, list) else [])]
        if not polygons or any(p.ndim != 1 or len(p) < 6 or len(p) % 2 for p in polygons):
            raise Unreadable(
                f"{where}: expected an RLE object or polygons [[x, y, ...], ...] of an even number "
                f"(>= 6) of coordinates, got {_short(seg)}"
            )
        _check_in_image(np.concatenate(polygons), size, where)
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w))).astype(bool)
    box = _numbers(a.get("bbox"), f"{where}: bbox") if "bbox" in a else np.zeros(0)
    if box.shape != (4,) or box[2] <= 0 or box[3] <= 0:
        raise Unreadable(f"{where}: no segmentation, and no bbox [x, y, width > 0, height > 0]")
    x, y, bw, bh = box
    _check_in_image(np.array([x, y, x + bw, y + bh]), size, where)
    mask = np.zeros(size, bool)
    mask[int(y) : int(np.ceil(y + bh)), int(x) : int(np.ceil(x + bw))] = True
    return mask


def _check_in_image(xy: np.ndarray, size: tuple[int, int], where: str) -> None:
    """Pixel coordinates (x, y, x, y, ...) must lie on the image, to `PIXEL_TOLERANCE`."""
    xs, ys = xy[0::2], xy[1::2]
    if (
        min(xs.min(), ys.min()) < -PIXEL_TOLERANCE
        or xs.max() > size[1] + PIXEL_TOLERANCE
        or (ys.max() > size[0] + PIXEL_TOLERANCE)
    ):
        raise Unreadable(
            f"{where}: coordinates reach ({xs.min():g}..{xs.max():g}, {ys.min():g}..{ys.max():g}), "
            f"outside the {size[1]}x{size[0]} px image"
        )


def _rle_mask(seg: dict, size: tuple[int, int], where: str) -> np.ndarray:
    """A COCO RLE (compressed string or list of counts, column-major) decoded and checked."""
    h, w = size
    if seg.get("size") != [h, w]:
        raise Unreadable(f"{where}: RLE size {_short(seg.get('size'))} is not the image's [{h}, {w}]")
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


def scan_labelme(src: Path) -> Source:
    """LabelMe JSON files under `src`, each naming its image (imagePath, or embedded imageData).

    Every JSON file is a LabelMe file or a listed skip, checked here: malformed JSON, a shape
    type this importer cannot draw, or a shape without a label or valid points.
    """
    _require_dir(src, "a folder of LabelMe JSON files")
    items, names, skipped = [], [], []
    labelled: dict[Path, Path] = {}
    for js in sorted(src.rglob("*.json")):
        try:
            doc = _read_json(js)
            if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
                raise Unreadable(f"{js}: not a LabelMe file (expected an object with a 'shapes' list)")
            shapes = [_labelme_shape(s, f"{js}: shapes[{n}]") for n, s in enumerate(doc["shapes"])]
            image, in_json = _labelme_image(doc, js)
        except Unreadable as e:
            skipped.append(_skip(js, str(e)))
            continue
        if not in_json and image in labelled:
            raise ImportFailure(f"{labelled[image]} and {js} both label {image}; expected one file per image")
        labelled[image] = js
        for label, _, _ in shapes:
            _check_names([label], js)
            names += [label] if label not in names else []
        stratum = shapes[0][0] if shapes else "good"
        reader = _labelme_reader(shapes, js, (doc.get("imageHeight"), doc.get("imageWidth")))
        items.append(
            SourceItem(
                _sample_id(js.relative_to(src)), js if in_json else image, stratum, reader, in_json, js
            )
        )
    return Source("labelme", src, names, items, skipped)


def _labelme_shape(shape: object, where: str) -> tuple[str, str, np.ndarray]:
    """(label, shape type, points as n x 2) of a LabelMe shape, checked: skipping one shape
    would silently change the image's labels, so a bad shape skips the whole file."""
    if not isinstance(shape, dict):
        raise Unreadable(f"{where}: expected an object, got {_short(shape)}")
    kind, label = shape.get("shape_type") or "polygon", shape.get("label")
    if kind not in LABELME_POINTS:
        raise Unreadable(
            f"{where} (label {label!r}) has shape_type {kind!r}; expected one of {', '.join(LABELME_POINTS)}"
        )
    if not isinstance(label, str) or not label.strip():
        raise Unreadable(f"{where}: expected a non-empty 'label', got {_short(label)}")
    points = _numbers(shape.get("points"), f"{where}: points")
    low, high = LABELME_POINTS[kind]
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < low or (high and len(points) > high):
        raise Unreadable(
            f"{where}: a {kind} needs {low}{'' if high == low else ' or more'} [x, y] points, "
            f"got {_short(shape.get('points'))}"
        )
    return label, kind, points


def _labelme_image(doc: dict, js: Path) -> tuple[Path, bool]:
    """The image file a LabelMe document names, or (the JSON, True) when it embeds imageData."""
    path = doc.get("imagePath")
    image = js.parent / path.replace("\\", "/") if isinstance(path, str) and path else None
    if image is not None and image.is_file():
        return image, False
    if isinstance(doc.get("imageData"), str) and doc["imageData"]:
        return js, True
    raise Unreadable(f"{js}: its imagePath {path!r} is not a file, and it has no imageData")


def _labelme_reader(shapes: list[tuple[str, str, np.ndarray]], js: Path, declared: tuple) -> LabelReader:
    """LabelMe points are pixel coordinates; shapes are filled including their outline."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        _check_declared_size(str(js), declared, size)
        masks = []
        for n, (label, kind, pts) in enumerate(shapes):
            _check_in_image(pts.ravel(), size, f"{js}: shapes[{n}]")
            mask = np.zeros(size, np.uint8)
            if kind == "circle":
                centre = tuple(int(round(v)) for v in pts[0])
                cv2.circle(mask, centre, int(round(float(np.hypot(*(pts[1] - pts[0]))))), 1, -1)
            else:
                if kind == "rectangle":
                    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
                    pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
                ring = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
                cv2.fillPoly(mask, [ring], 1)
                cv2.polylines(mask, [ring], True, 1)
            masks.append((label, mask.astype(bool)))
        return _with_lost_note(from_masks(masks, size, classes), len(masks), js)

    return read


# ----------------------------------------------------------------- splitting


def assign_splits(
    items: Sequence[SourceItem],
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    group_pattern: str | None = None,
) -> dict[str, str]:
    """Deterministic train/val/test split of item ids, stratified by class and file-name group.

    Within each stratum (class, and the first match of `group_pattern` in the file name), the
    ids are sorted, shuffled with a generator seeded by (seed, stratum), and cut at the rounded
    cumulative fractions, so one stratum's split does not depend on the others.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ImportFailure(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    try:
        regex = re.compile(group_pattern) if group_pattern else None
    except re.error as e:
        raise ConfigError(f"--group-pattern {group_pattern!r} is not a regular expression ({e})") from None
    strata: dict[str, list[str]] = defaultdict(list)
    for item in items:
        match = regex.search(item.image.name) if regex else None
        strata[f"{item.stratum}|{match.group(0) if match else ''}"].append(item.id)
    split_of = {}
    for key, ids in sorted(strata.items()):
        rng = np.random.default_rng([seed, *key.encode()])
        order = sorted(ids)
        rng.shuffle(order)
        n = len(order)
        cut_train = int(n * fractions[0] + 0.5)
        cut_val = int(n * (fractions[0] + fractions[1]) + 0.5)
        for i, sid in enumerate(order):
            split_of[sid] = SPLITS[0] if i < cut_train else SPLITS[1] if i < cut_val else SPLITS[2]
    return split_of


# ----------------------------------------------------------------- cutting into samples

VALID_REGION_RULES = ("saturated-columns",)


@dataclass(frozen=True)
class Cutting:
    """How a source image becomes samples: cropped to its valid region (`valid_region`, a rule
    of VALID_REGION_RULES), then cut into `tile` px tiles at most `stride` px apart (default:
    `tile`); a tile with less than `min_valid` of its pixels in the valid region is dropped.
    The defaults leave an image one sample, as it is."""

    tile: int | None = None
    stride: int | None = None
    valid_region: str | None = None
    saturation: int = 250
    min_valid: float = 0.5

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile < 1:
            raise ConfigError(f"--tile {self.tile}: expected a tile size of at least 1 px")
        if self.stride is not None:
            if self.tile is None:
                raise ConfigError(f"--stride {self.stride} needs --tile (it is the step between tiles)")
            if not 1 <= self.stride <= self.tile:
                gap = self.stride - self.tile
                why = f": tiles would leave gaps of {gap} px between them" if gap > 0 else ""
                raise ConfigError(f"--stride {self.stride}: expected 1 to --tile {self.tile}{why}")
        if self.valid_region is not None and self.valid_region not in VALID_REGION_RULES:
            rules = ", ".join(VALID_REGION_RULES)
            raise ConfigError(f"--valid-region {self.valid_region!r}: unknown rule, expected one of {rules}")
        if not 0 <= self.saturation <= 255:
            raise ConfigError(f"--saturation {self.saturation}: expected an 8-bit value, 0 to 255")
        if not 0.0 <= self.min_valid <= 1.0:
            raise ConfigError(f"--min-valid {self.min_valid}: expected a fraction of a tile, 0 to 1")

    @property
    def active(self) -> bool:
        return self.tile is not None or self.valid_region is not None


def valid_window(image: np.ndarray, rule: str | None, saturation: int = 250) -> Tile | None:
    """The part of an image that is surface, as a window; None when no part of it is.

    `saturated-columns`: the columns from the left and from the right edge inwards whose median
    is saturated (at least `saturation` in every channel: white) are not surface, such as the
    white band at the left of many AITEX strips; an image without such columns is kept whole.
    """
    height, width = image.shape[:2]
    if rule is None:
        return Tile(0, 0, width, height)
    surface = np.flatnonzero(np.median(image.min(axis=2), axis=0) < saturation)
    return Tile(int(surface[0]), 0, int(surface[-1]) + 1, height) if surface.size else None


Piece = tuple[str, Tile | None]  # a sample's id and its window in source pixels (None: all of it)


def cut_item(
    item: SourceItem, image: np.ndarray, annotations: Annotations, cutting: Cutting
) -> tuple[list[Piece], list[str], list[dict[str, Any]]] | dict[str, str]:
    """The samples a source image is cut into, notes on the cut, and its dropped tiles; or the
    skip of an image whose cut leaves nothing it may be imported as. Without cutting, the image
    is its one sample, as it is.

    A tile's id is the image's id and its offset (`0001_002_00_x1103`, `_y0256` added below
    the first row). Labelled pixels that no kept sample holds are counted in a note; when that
    is all of a defect-class image's labels, the image is skipped: its samples would count as
    good.
    """
    if not cutting.active:
        return [(item.id, None)], [], []
    height, width = image.shape[:2]
    window = valid_window(image, cutting.valid_region, cutting.saturation)
    if window is None:
        why = f"every column has a median >= {cutting.saturation}, so no part of it is surface"
        return _skip(item.image, f"--valid-region {cutting.valid_region}: {why}")
    notes = []
    if window != Tile(0, 0, width, height):
        notes.append(
            f"{item.image}: --valid-region {cutting.valid_region} keeps columns {window.x0}..{window.x1 - 1} "
            f"of {width}: {window.x0} at the left and {width - window.x1} at the right have a median "
            f">= {cutting.saturation} and are cropped"
        )
    pieces: list[Piece] = []
    dropped: list[dict[str, Any]] = []
    if cutting.tile is None:
        pieces.append((item.id, window))
    else:
        for tile in tiles_within(window, width, height, cutting.tile, cutting.stride or cutting.tile):
            sid = f"{item.id}_x{tile.x0:04d}" + (f"_y{tile.y0:04d}" if tile.y0 else "")
            valid = overlap_fraction(tile, window)
            if valid < cutting.min_valid:
                dropped.append({"file": str(item.image), "id": sid, "valid_fraction": round(valid, 4)})
            else:
                pieces.append((sid, tile))
    covered = np.zeros((height, width), bool)
    for _, tile in pieces:
        if tile is not None:
            covered[tile.y0 : tile.y1, tile.x0 : tile.x1] = True
    labelled = annotations.instance_map > 0
    lost, total = int((labelled & ~covered).sum()), int(labelled.sum())
    where = (
        f"{item.label_file or item.image}: {lost} of its {total} labelled px lie outside the valid "
        "region or in dropped tiles"
    )
    if lost and lost == total and item.stratum != "good":
        return _skip(item.image, f"{where}; its class is {item.stratum}, so it is not imported as good")
    if lost:
        notes.append(f"{where} and are not imported")
    return pieces, notes, dropped


# ----------------------------------------------------------------- writing


def scan(
    fmt: str,
    src: Path,
    names: Sequence[str] | None = None,
    images: Path | None = None,
    class_pattern: str = DEFAULT_CLASS_PATTERN,
    class_map: Sequence[str] = (),
) -> Source:
    """Scan a source of the given format (one of FORMATS); a source without any image to
    import is an error, naming why its files were passed over."""
    if not src.exists():
        raise ImportFailure(f"{src}: no such file or folder")
    scanners: dict[str, Callable[[], Source]] = {
        "mvtec": lambda: scan_mvtec(src),
        "folders": lambda: scan_class_folders(src),
        "masks": lambda: scan_masks(src, class_pattern, class_map),
        "yolo": lambda: scan_yolo(src, names),
        "coco": lambda: scan_coco(src, images),
        "labelme": lambda: scan_labelme(src),
    }
    if fmt not in scanners:
        raise ImportFailure(f"unknown format {fmt!r}, expected one of {', '.join(FORMATS)}")
    source = scanners[fmt]()
    if not source.items:
        why = "; ".join(s["reason"] for s in source.skipped[:3]) + (
            "; ..." if len(source.skipped) > 3 else ""
        )
        more = f" ({len(source.skipped)} files passed over: {why})" if why else ""
        raise ImportFailure(f"{src}: found no image to import as {fmt}{more}")
    return source


def import_dataset(
    source: Source,
    out: Path,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    group_pattern: str | None = None,
    impurities: Sequence[str] = (),
    overwrite: bool = False,
    cutting: Cutting = Cutting(),
) -> dict:
    """Write a scanned source as a canonical dataset; returns (and saves) the import report.

    Everything that can stop the import is checked before the first file is written. Samples
    already written (a rerun into the same folder with the same options) are kept, not re-read;
    their notes come from their meta files. `overwrite` replaces a dataset made with other
    options, which `DatasetWriter` otherwise refuses. A sample whose source says "defective" (a
    defect class folder, a label line) but whose labels are empty is skipped and listed: it
    would otherwise count as a good image. The writer is opened at the first image that can be
    imported (the one sample a rerun reads again), so an import that skips every image is an
    error that writes (and removes) nothing.

    `cutting` (`cut_item`): each source image becomes its valid region or its tiles. Splits are
    drawn per source image, so all tiles of one image land in one split. A rerun reads every
    source image again (its tiles are known only then) and keeps the tiles already written.
    """
    unknown = sorted(set(impurities) - set(source.class_names))
    if unknown:
        raise ImportFailure(f"impurity classes {unknown} are not among {source.class_names}")
    first: dict[str, Path] = {}
    for item in source.items:
        if item.id in first:
            raise ImportFailure(f"{first[item.id]} and {item.image} both become sample {item.id}; rename one")
        first[item.id] = item.image
    classes = tuple(
        ClassInfo(i, name, "impurity" if name in impurities else "defect")
        for i, name in enumerate(source.class_names, 1)
    )
    split_of = assign_splits(source.items, fractions, seed, group_pattern)
    options: dict[str, Any] = {
        "importer": source.format,
        "seed": seed,
        "fractions": list(fractions),
        "group_pattern": group_pattern,
    }
    if cutting.active:
        options["cutting"] = asdict(cutting)
    skipped, notes = list(source.skipped), list(source.notes)
    dropped: list[dict[str, Any]] = []
    sources: dict[str, int] = dict.fromkeys(SPLITS, 0)
    good_tiles = 0
    with ExitStack() as stack:
        writer: DatasetWriter | None = None
        for item in tqdm(source.items, desc=f"importing {source.format}", unit="img"):
            split = split_of[item.id]
            if not cutting.active and writer is not None and writer.has(split, item.id):
                notes += _stored_notes(writer.path("meta", split, item.id))
                sources[split] += 1
                continue
            read = _read_item(item, classes)
            cut = read if isinstance(read, dict) else cut_item(item, read[0], read[1], cutting)
            if isinstance(cut, dict):
                skipped.append(cut)
                continue
            image, annotations, item_notes = read
            pieces, cut_notes, item_dropped = cut
            if not pieces:  # every tile dropped
                notes += item_notes + cut_notes
                dropped += item_dropped
                continue
            if writer is None:
                writer = stack.enter_context(DatasetWriter(out, classes, source=options, overwrite=overwrite))
                if not cutting.active and writer.has(split, item.id):  # a rerun: kept, as above
                    notes += _stored_notes(writer.path("meta", split, item.id))
                    sources[split] += 1
                    continue
            notes += item_notes + cut_notes
            dropped += item_dropped
            sources[split] += 1
            spec: dict[str, Any] = {"source_file": str(item.image)}
            spec |= {"notes": item_notes} if item_notes else {}
            for sid, window in pieces:
                if window is None:  # the image as it is
                    writer.write(split, sid, image, annotations, spec=spec)
                    continue
                if item.stratum != "good" and not window.crop(annotations.instance_map).any():
                    good_tiles += 1
                if not writer.has(split, sid):
                    origin = {"source_id": item.id, "source_class": item.stratum}
                    origin["offset"] = [window.x0, window.y0]
                    labels = crop_annotations(annotations, window)
                    writer.write(split, sid, window.crop(image), labels, spec=spec | origin)
        if writer is None:
            raise ImportFailure(_nothing_imported(source, skipped, out, dropped))
        counts = writer.finalize()
    if good_tiles:
        notes.append(
            f"{good_tiles} tiles of defect-class images hold no labelled pixel and are imported as good "
            "(their meta spec.source_class names the class of their image)"
        )
    report: dict[str, Any] = {
        "format": source.format,
        "classes": [c.to_dict() for c in classes],
        "splits": counts,
        "imported": sum(counts.values()),
        "skipped": skipped,
        "notes": notes,
    }
    if cutting.active:
        report |= {"cutting": asdict(cutting), "source_images": sources, "dropped_tiles": dropped}
    atomic_write_json(out / "import_report.json", report)
    return report


def _read_item(
    item: SourceItem, classes: tuple[ClassInfo, ...]
) -> tuple[np.ndarray, Annotations, list[str]] | dict[str, str]:
    """An item's image, annotations and notes, or the skip that says why it cannot be imported."""
    try:
        image = read_image(item.image, item.image_in_json)
        annotations, notes = item.read_labels(image.shape[:2], classes)
    except Unreadable as e:
        return _skip(item.image, str(e))
    if item.stratum != "good" and not annotations.instances:
        why = f"{item.label_file or item.image}: no labelled pixel, but its class is {item.stratum}"
        return _skip(item.image, "; ".join([why, *notes]))
    return image, annotations, notes


def _nothing_imported(
    source: Source, skipped: list[dict[str, str]], out: Path, dropped: Sequence[dict[str, Any]] = ()
) -> str:
    """The error of an import that skipped every image (or dropped all its tiles), with the skip
    and drop lists (nothing was written)."""
    why = "skipped" if not dropped else f"skipped or left no tile ({len(dropped)} tiles dropped)"
    lines = [
        f"{source.src}: nothing imported as {source.format}: all {len(source.items)} images were "
        f"{why}, so nothing was written to {out}; the {len(skipped)} skips:"
    ]
    lines += [f"  skipped {s['file']}: {s['reason']}" for s in skipped]
    lines += [f"  dropped tile {d['id']}: {d['valid_fraction']:.0%} of it is valid" for d in dropped]
    return "\n".join(lines)


def _stored_notes(meta: Path) -> list[str]:
    """The notes of a sample written by an earlier run, so that a resumed import lists them too."""
    try:
        spec = json.loads(meta.read_text()).get("spec")
    except (OSError, ValueError, AttributeError):
        return []
    return list(spec.get("notes", [])) if isinstance(spec, dict) else []


def _check_out(src: Path, out: Path) -> None:
    """An output inside a source folder would be read back as source data by the next import."""
    if src.is_dir() and (out.resolve() == src.resolve() or src.resolve() in out.resolve().parents):
        raise ConfigError(f"--out {out} is inside the source folder {src}; write the dataset elsewhere")


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=OutputPath(folder=True), help="Dataset folder to write.")
@click.option("--seed", default=0, show_default=True, help="Seed of the train/val/test split.")
@click.option(
    "--split",
    "fractions",
    nargs=3,
    type=Finite(),
    default=(0.6, 0.2, 0.2),
    show_default=True,
    help="Fractions of train, val and test.",
)
@click.option(
    "--group-pattern",
    default=None,
    help=r"Regex whose match in the file name is a split group, e.g. 'exp\d+'.",
)
@click.option(
    "--impurity",
    "impurities",
    multiple=True,
    help="A class that is an impurity, not a defect (repeatable).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace a dataset in --out that was made with other options."
)
@click.option("--names", default=None, help="YOLO: comma-separated class names (else the data yaml).")
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    default=None,
    help="COCO: image folder (else the JSON's folder).",
)
@click.option(
    "--class-pattern",
    default=DEFAULT_CLASS_PATTERN,
    show_default=True,
    help=r"masks: regex whose first group in an image's name is its class, e.g. '^\d+_(\d+)_' for AITEX.",
)
@click.option(
    "--class-map",
    "class_map",
    multiple=True,
    help="masks: rename classes: a table (aitex: its defect codes) or old=new (repeatable).",
)
@click.option("--tile", type=int, default=None, help="Cut each image into tiles of this many px.")
@click.option("--stride", type=int, default=None, help="Step between tiles in px (default: --tile).")
@click.option(
    "--valid-region",
    default=None,
    help=f"Crop each image to its surface by a rule: {', '.join(VALID_REGION_RULES)}.",
)
@click.option(
    "--saturation",
    type=int,
    default=Cutting.saturation,
    show_default=True,
    help="saturated-columns: the median at and above which a column is not surface.",
)
@click.option(
    "--min-valid",
    type=Finite(),
    default=Cutting.min_valid,
    show_default=True,
    help="Drop a tile with a smaller share of its pixels inside the valid region.",
)
def import_data(
    fmt: str,
    src: Path,
    out: Path,
    seed: int,
    fractions: tuple[float, float, float],
    group_pattern: str | None,
    impurities: tuple[str, ...],
    overwrite: bool,
    names: str | None,
    images: Path | None,
    class_pattern: str,
    class_map: tuple[str, ...],
    tile: int | None,
    stride: int | None,
    valid_region: str | None,
    saturation: int,
    min_valid: float,
) -> None:
    """Import real data (FORMAT: mvtec, folders, masks, yolo, coco, labelme) into the canonical layout.

    Images are re-split into train/val/test (--split, --seed), stratified by class and by
    --group-pattern; the source's own split is not kept.

    mvtec: SRC is one MVTec AD category: train/good/*, test/good/*, test/<class>/<stem>.png
    and, for each defective image, ground_truth/<class>/<stem>_mask.png.

    folders: SRC holds one folder per class, with images and their masks anywhere inside it; a
    mask is <stem>_mask.* or <stem>_gt.*, or the .png beside a non-png image of the same stem
    (magnetic tile: MT_Crack/Imgs/x.jpg with x.png). Folders named good, free, ok, normal,
    defect_free or no_defect, also after a prefix (MT_Free), hold defect-free images, whose
    masks must be empty; a prefix shared by all folders (MT_) is dropped from class names.

    masks: SRC holds image folders and one mask folder (its name holds 'mask') side by side.
    The masks of <image folder>/<path>/<stem>.* are <mask folder>/<path>/<stem>.*, <stem>_mask.*
    or <stem>_mask<k>.* (several: their union). Image folders named good, no_defect, ... (also
    with _images: NoDefect_images) hold defect-free images; the class of any other image is
    the first group of --class-pattern in its name, renamed by --class-map. An image of a
    defect folder without a mask is skipped. A mask of another size that is the image scaled by
    one factor is resized to it (a note); any other size skips the sample. AITEX: --class-pattern
    '^\\d+_(\\d+)_' --class-map aitex; the leather set: --class-map wringle=wrinkle.

    yolo: SRC holds images/<path>.<ext> and labels/<path>.txt: boxes "class cx cy w h" or
    polygons "class x1 y1 x2 y2 ...", normalised to [0, 1]. Class names come from --names,
    else from 'names' in a data yaml in SRC, else class0, class1, ... An image without a label
    file is good. A class id outside the names stops the import; a line with coordinates that
    are not finite or not in [0, 1] skips its image (nothing is clipped).

    coco: SRC is a COCO instances JSON (polygons, RLE, or the bbox when there is no
    segmentation), its images under --images, else the JSON's folder. An annotation on an
    unknown image id or category id stops the import.

    labelme: SRC is a folder of LabelMe JSON files, each naming its image (imagePath) or
    embedding it (imageData), with polygon, rectangle and circle shapes in pixels. A file with
    another shape type, malformed JSON or a shape without a label or points is skipped.

    Cutting (any format): --valid-region saturated-columns crops the columns, from the left and
    right edges inwards, whose median is at least --saturation in every channel (a white band
    beside the surface); --tile cuts each image, or its valid region, into tiles at most
    --stride apart, the last flush with the border; a tile of which less than --min-valid lies
    in the valid region (where the region is narrower than a tile) is dropped and listed. A tile
    is a sample <image id>_x<x0> (and _y<y0> below the first row); its meta spec records its
    image and offset. All tiles of an image go to one split.

    Masks (mvtec, folders): a pixel is defect when its value is at least half the range (128
    of 255, 32768 of 65535, brightest channel), so anti-aliased edges keep the core of their
    region; a region whose values all lie below that is background and listed as a note. The
    masks format reads its masks by the same rule.

    No label is changed silently: a problem of the whole source stops the import before
    anything is written, a problem of one file skips it, and both name the file. Skips and
    notes are printed and listed in OUT/import_report.json.
    """
    _check_out(src, out)
    cutting = Cutting(tile, stride, valid_region, saturation, min_valid)
    listed = [n.strip() for n in names.split(",")] if names else None
    source = scan(fmt, src, listed, images, class_pattern, class_map)
    report = import_dataset(source, out, fractions, seed, group_pattern, impurities, overwrite, cutting)
    click.echo(f"imported {report['imported']} images into {out}: {report['splits']}")
    if cutting.active:
        click.echo(f"from {sum(report['source_images'].values())} source images: {report['source_images']}")
    for drop in report.get("dropped_tiles", []):
        click.echo(f"dropped tile {drop['id']}: {drop['valid_fraction']:.0%} of it is valid", err=True)
    for skip in report["skipped"]:
        click.echo(f"skipped {skip['file']}: {skip['reason']}", err=True)
    for note in report["notes"]:
        click.echo(f"note: {note}", err=True)
    if report["skipped"] or report["notes"] or report.get("dropped_tiles"):
        dropped = f", {len(report['dropped_tiles'])} tiles dropped" if report.get("dropped_tiles") else ""
        click.echo(
            f"{len(report['skipped'])} skipped, {len(report['notes'])} notes{dropped}; "
            f"listed in {out / 'import_report.json'}",
            err=True,
        )
