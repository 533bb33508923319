"""The mask rule (`read_binary_mask`): how a mask file becomes labels, for mvtec, folders and masks.

A mask of another size than its image stops the import while scanning (`check_same_size`), except
in the masks format, which repairs a mask that is its image scaled by one factor."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from evaluate.formats.source import (
    ImportFailure,
    LabelReader,
    Labels,
    SourceItem,
    Unreadable,
    decode,
    no_labels,
    sample_id,
)
from synth.annotations import Annotations, ClassInfo

EXIF_ORIENTATION = 0x0112  # the EXIF tag; values 5 to 8 turn the stored pixels a quarter turn
QUARTER_TURNS = (5, 6, 7, 8)


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
    mask = decode(mask_path)
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


def mask_reader(masks: Sequence[Path], image: Path, name: str, rescale: bool = False) -> LabelReader:
    """Class masks: each 8-connected component of their union becomes an instance of `name`."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        class_id = next(c.id for c in classes if c.name == name)
        binary, notes = _read_union(masks, image, size, rescale)
        return Annotations.from_semantic_mask(binary.astype(np.uint8) * class_id, classes), notes

    return read


def good_mask_reader(masks: Sequence[Path], image: Path, rescale: bool = False) -> LabelReader:
    """Masks beside a good-class image must be empty: a defect there contradicts its folder."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        binary, notes = _read_union(masks, image, size, rescale)
        if binary.any():
            raise Unreadable(
                f"{', '.join(map(str, masks))}: marks {int(binary.sum())} px as defect, "
                "but its image is in a good-class folder"
            )
        return no_labels(size, classes)[0], notes

    return read


def _missing_mask(image: Path) -> LabelReader:
    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        raise Unreadable(f"{image}: no mask beside it in a defect class folder")

    return read


def mask_item(src: Path, image: Path, stratum: str, mask: Path | None) -> SourceItem:
    """An image labelled by a class mask, or, in the good class, by no mask or an empty one."""
    if mask is not None and mask.is_file():
        _check_same_size(mask, image)
    if stratum == "good":
        reader = no_labels if mask is None else good_mask_reader([mask], image)
    else:
        reader = _missing_mask(image) if mask is None else mask_reader([mask], image, stratum)
    return SourceItem(sample_id(image.relative_to(src)), image, stratum, reader, label_file=mask)
