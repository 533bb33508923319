"""The common records of every source format, and the file reading they share.

A scanned source is a `Source`: its class names, a list of `SourceItem`s (an image file plus a
function that reads its labels as `Annotations`) and the files passed over while scanning. Label
files are read as UTF-8 text or JSON; images as 8-bit RGB (`read_image`). A problem of the whole
source raises `ImportFailure`; a problem of one file raises `Unreadable`, which skips its sample."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from synth.annotations import Annotations, ClassInfo
from synth.errors import DataError
from synth.images import IMAGE_SUFFIXES, UnreadableImage, decode_file, to_rgb8
from synth.images import read_image as read_image_file

GOOD_NAMES = {"good", "free", "ok", "normal", "defect_free", "defectfree", "nodefect", "no_defect"}


PIXEL_TOLERANCE = 1.0  # COCO coordinates may leave the image by one pixel (vertices on its edge)


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


def decode(path: Path) -> np.ndarray | None:
    try:
        return decode_file(path)
    except UnreadableImage as e:
        raise Unreadable(str(e)) from None


def _decode_embedded(js: Path) -> np.ndarray | None:
    try:
        data = base64.b64decode(read_json(js)["imageData"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None


def read_text(path: Path) -> str:
    """A label file's text (UTF-8, a byte-order mark allowed); `Unreadable` names the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise Unreadable(f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})") from None
    except OSError as e:
        raise Unreadable(f"{path}: cannot be read ({e.strerror or e})") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise Unreadable(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def numbers(value: object, where: str) -> np.ndarray:
    """`value` (a number or nested lists of them) as floats, if every one is finite."""
    try:
        array = np.asarray(value, np.float64) if not isinstance(value, str | bytes) else None
    except (TypeError, ValueError):
        array = None
    if array is None or array.size == 0 or not np.isfinite(array).all():
        raise Unreadable(f"{where}: expected finite numbers, got {short(value)}")
    return array


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def skip(file: Path, reason: str) -> dict[str, str]:
    return {"file": str(file), "reason": reason}


def check_declared_size(where: str, declared: tuple[object, object], size: tuple[int, int]) -> None:
    """Labels drawn for another image size would land in the wrong place: skip the sample."""
    if all(isinstance(v, int) for v in declared) and tuple(declared) != size:
        raise Unreadable(
            f"{where}: says its image is {declared[1]}x{declared[0]} px, "
            f"but the image is {size[1]}x{size[0]} px"
        )


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


def with_lost_note(annotations: Annotations, n_objects: int, label_file: Path) -> Labels:
    """The annotations, with a note when some of the file's objects cover no pixel of their own."""
    lost = n_objects - len(annotations.instances)
    if lost <= 0:
        return annotations, []
    return annotations, [
        f"{label_file}: {lost} of {n_objects} objects cover no pixel of their own (smaller than a "
        "pixel, outside the image, or hidden under later ones) and are not in the labels"
    ]


def no_labels(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
    return Annotations.from_instance_map(np.zeros(size, np.uint16), {}, classes), []


def unused(files: Sequence[Path], used: set[Path | None], why: str) -> list[dict[str, str]]:
    """Files that no item reads (such as a mask whose image is missing), listed as skipped."""
    return [skip(f, why) for f in files if f not in used]


def files_of(items: Sequence[SourceItem]) -> set[Path | None]:
    return {i.image for i in items} | {i.label_file for i in items}


def sample_id(rel: Path) -> str:
    """A file-system-safe sample id from a path relative to the source root."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(rel.with_suffix("").parts))


def images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ImportFailure(f"{path}: expected {what} (a folder), found none")


def check_names(names: Sequence[str], where: object) -> None:
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


def is_good(folder: str, prefix: str) -> bool:
    """A good-class folder: a good name, also after the shared prefix or any `<prefix>_`, so
    that `MT_Free` is good even when it is the only folder."""
    key = re.sub(r"[\s-]+", "_", folder.lower())
    return bool({key, key[len(prefix) :], key.split("_", 1)[-1]} & GOOD_NAMES)


def check_in_image(xy: np.ndarray, size: tuple[int, int], where: str) -> None:
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
