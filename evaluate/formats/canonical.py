"""The import of a scanned `Source` into a canonical dataset (docs/CONTRACTS.md), with its report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from evaluate.formats.cutting import NO_CUTTING, Cutting, cut_item
from evaluate.formats.report import nothing_imported
from evaluate.formats.source import (
    ImportFailure,
    Source,
    SourceItem,
    Unreadable,
    read_image,
    skip,
)
from evaluate.formats.split import assign_splits
from synth.annotations import Annotations, ClassInfo
from synth.config import SPLITS
from synth.tiles import crop_annotations
from synth.writers import DatasetWriter, atomic_write_json


def import_dataset(
    source: Source,
    out: Path,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    group_pattern: str | None = None,
    impurities: Sequence[str] = (),
    overwrite: bool = False,
    cutting: Cutting = NO_CUTTING,
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
            raise ImportFailure(nothing_imported(source, skipped, out, dropped))
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
        return skip(item.image, str(e))
    if item.stratum != "good" and not annotations.instances:
        why = f"{item.label_file or item.image}: no labelled pixel, but its class is {item.stratum}"
        return skip(item.image, "; ".join([why, *notes]))
    return image, annotations, notes


def _stored_notes(meta: Path) -> list[str]:
    """The notes of a sample written by an earlier run, so that a resumed import lists them too."""
    try:
        spec = json.loads(meta.read_text()).get("spec")
    except (OSError, ValueError, AttributeError):
        return []
    return list(spec.get("notes", [])) if isinstance(spec, dict) else []
