"""YOLO detect and segment labels (images/ beside labels/), read into a `Source`.

Label lines are parsed by the one YOLO parser, `synth.annotations.yolo_objects`; the project
writes YOLO labels in `synth.writers.DatasetWriter` (`Annotations.to_yolo`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from evaluate.formats.source import (
    ImportFailure,
    LabelReader,
    Labels,
    Source,
    SourceItem,
    Unreadable,
    check_names,
    images_under,
    no_labels,
    read_text,
    require_dir,
    sample_id,
    short,
    skip,
    unused,
    with_lost_note,
)
from synth.annotations import AnnotationError, Annotations, ClassInfo, YoloObject, yolo_objects

YOLO_TOLERANCE = 1e-5  # normalised YOLO coordinates may leave [0, 1] by float rounding only


def scan_yolo(src: Path, names: Sequence[str] | None = None) -> Source:
    """YOLO detect or segment: every image under images/ with labels/…/<stem>.txt beside it.

    Class names come from `names`, else from a data yaml in `src`, else class0, class1, … up
    to the largest class id. Every label line is checked here, so that a class id outside the
    names stops the import before anything is written.
    """
    require_dir(src / "images", "YOLO images/")
    require_dir(src / "labels", "YOLO labels/ beside images/ (labels/<same path as the image>.txt)")
    images = images_under(src / "images")
    label_of = {
        image: src / "labels" / image.relative_to(src / "images").with_suffix(".txt") for image in images
    }
    if images and not any(label.is_file() for label in label_of.values()):
        raise ImportFailure(
            f"{src / 'labels'}: none of the {len(images)} images under {src / 'images'} has a label "
            f"file; expected labels/<same path>.txt, such as {label_of[images[0]]}"
        )
    class_names, origin = (list(names), "--names") if names else _yolo_yaml_names(src)
    check_names(class_names, origin)
    skipped = unused(
        sorted((src / "labels").rglob("*.txt")), set(label_of.values()), "a label file without an image"
    )
    objects: dict[Path, list[tuple[int, int]]] = {}
    for image, label in label_of.items():
        try:
            objects[image] = _yolo_objects(label) if label.is_file() else []
        except Unreadable as e:
            skipped.append(skip(label, str(e)))
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
        sid = sample_id(image.relative_to(src / "images"))
        label = label_of[image]
        items.append(SourceItem(sid, image, stratum, _yolo_reader(label, len(lines)), label_file=label))
    return Source("yolo", src, class_names, items, skipped)


def _yolo_objects(label: Path) -> list[tuple[int, int]]:
    """(line number, class id) of each object of a YOLO label file, after checking every value:
    `yolo_objects` checks the numbers, the whole-number class and how many values there are;
    here they must be finite and normalised to [0, 1] (a box with its edges inside the image,
    and a width and height > 0). Nothing is clipped."""
    objects = []
    try:
        for obj in yolo_objects(read_text(label), str(label)):
            _check_coordinates(obj, f"{label}:{obj.line}")
            objects.append((obj.line, obj.yolo_class))
    except AnnotationError as e:
        raise Unreadable(str(e)) from None
    return objects


def _check_coordinates(obj: YoloObject, where: str) -> None:
    coords = obj.values
    if len(coords) == 4:
        half = coords[2:] / 2
        if not (coords[2] > 0 and coords[3] > 0):
            raise Unreadable(f"{where}: box width and height must be > 0, got {obj.text!r}")
        coords = np.concatenate([coords[:2] - half, coords[:2] + half])
    if not np.isfinite(coords).all():
        raise Unreadable(f"{where}: coordinates must be finite numbers, got {obj.text!r}")
    if coords.min() < -YOLO_TOLERANCE or coords.max() > 1 + YOLO_TOLERANCE:
        raise Unreadable(
            f"{where}: coordinates must lie in [0, 1] (normalised to the image), got {obj.text!r}"
        )


def _yolo_yaml_names(src: Path) -> tuple[list[str], str]:
    """Class names from an Ultralytics data yaml in the root (names: list or {id: name}), and the
    yaml's path; ([], "") when there is none."""
    for data in sorted(src.glob("*.yaml")) + sorted(src.glob("*.yml")):
        try:
            loaded = yaml.safe_load(read_text(data))
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
            raise ImportFailure(f"{data}: 'names' must be a list or a mapping id: name, got {short(names)}")
    return [], ""


def _yolo_reader(label: Path, n_objects: int) -> LabelReader:
    """Reads a label file checked by `_yolo_objects`; a missing file is a good image (YOLO's rule)."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Labels:
        if not label.is_file():
            return no_labels(size, classes)
        try:
            annotations = Annotations.from_yolo(read_text(label), size, classes, source=str(label))
        except AnnotationError as e:
            raise Unreadable(str(e)) from e
        return with_lost_note(annotations, n_objects, label)

    return read
