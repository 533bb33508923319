"""Read a canonical dataset, and verify one (`synth verify DIR`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from synth.annotations import AnnotationError, Annotations, ClassInfo, iou
from synth.errors import DataError
from synth.writers import FORMAT, SPLITS, read_metas


class DatasetError(DataError):
    """A directory that is not a usable canonical dataset."""


def read_image_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{path}: cannot read image")
    return image


@dataclass(frozen=True)
class Sample:
    id: str
    split: str
    root: Path
    meta: dict[str, Any]

    def _path(self, kind: str, suffix: str = ".png") -> Path:
        return self.root / kind / self.split / f"{self.id}{suffix}"

    @property
    def image_path(self) -> Path:
        return self._path("images")

    @property
    def mask_path(self) -> Path:
        return self._path("masks")

    @property
    def instances_path(self) -> Path:
        return self._path("instances")

    @property
    def labels_path(self) -> Path:
        return self._path("labels", ".txt")

    @property
    def good(self) -> bool:
        return bool(self.meta["good"])

    def image(self) -> np.ndarray:
        return read_image_rgb(self.image_path)

    def mask(self) -> np.ndarray:
        return read_png(self.mask_path)

    def instance_map(self) -> np.ndarray:
        return read_png(self.instances_path).astype(np.uint16)

    def annotations(self, classes: tuple[ClassInfo, ...]) -> Annotations:
        instance_classes = {i["instance_id"]: i["class_id"] for i in self.meta["instances"]}
        return Annotations.from_instance_map(
            self.instance_map(), instance_classes, classes, self.meta.get("mm_per_px")
        )


class Dataset:
    """A canonical dataset root (docs/CONTRACTS.md)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / "dataset.json"
        if not info_path.exists():
            raise DatasetError(f"{self.root}: not a defectsynth dataset (no dataset.json)")
        self.info = json.loads(info_path.read_text())
        if self.info.get("format") != FORMAT:
            raise DatasetError(f"{info_path}: format {self.info.get('format')!r}, expected {FORMAT!r}")
        self.classes = tuple(ClassInfo(**c) for c in self.info["classes"])

    @property
    def splits(self) -> dict[str, int]:
        return {s: len(self.samples(s)) for s in SPLITS}

    def samples(self, split: str) -> list[Sample]:
        return [Sample(m["id"], split, self.root, m) for m in read_metas(self.root, split)]


def verify(root: str | Path) -> list[str]:
    """Every integrity problem of a dataset, as readable lines (empty list = healthy)."""
    try:
        dataset = Dataset(root)
    except DatasetError as error:
        return [str(error)]
    problems: list[str] = []
    known = {c.id for c in dataset.classes}
    for split in SPLITS:
        coco_path = dataset.root / "coco" / f"{split}.json"
        coco = json.loads(coco_path.read_text()) if coco_path.exists() else None
        samples = dataset.samples(split)
        if coco is None and samples:
            problems.append(f"{coco_path}: missing (run `synth render` again to finish the dataset)")
        coco_by_file = _coco_index(coco) if coco else {}
        for sample in samples:
            problems += _verify_sample(dataset, sample, known, coco_by_file)
        stray = {p.stem for p in (dataset.root / "images" / split).glob("*.png")} - {s.id for s in samples}
        problems += [f"images/{split}/{s}.png: image without meta (unfinished sample)" for s in sorted(stray)]
    return problems


def _coco_index(coco: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    return {img["file_name"]: by_image.get(img["id"], []) for img in coco["images"]}


def _verify_sample(
    dataset: Dataset, sample: Sample, known: set[int], coco_by_file: dict[str, list[dict]]
) -> list[str]:
    name = f"{sample.split}/{sample.id}"
    paths = [sample.image_path, sample.mask_path, sample.instances_path, sample.labels_path]
    missing = [str(p.relative_to(dataset.root)) for p in paths if not p.exists()]
    if missing:
        return [f"{name}: missing {', '.join(missing)}"]
    problems = []
    image = read_png(sample.image_path)
    mask, instance_map = sample.mask(), sample.instance_map()
    size = (sample.meta["height"], sample.meta["width"])
    for label, array in (("image", image), ("mask", mask), ("instances", instance_map)):
        if array.shape[:2] != size:
            problems.append(f"{name}: {label} is {array.shape[:2]}, meta says {size}")
    if problems:
        return problems
    unknown = sorted(set(np.unique(mask).tolist()) - known - {0})
    if unknown:
        problems.append(f"{name}: mask has unknown class ids {unknown}")
    try:
        annotations = sample.annotations(dataset.classes)
    except AnnotationError as error:
        return [*problems, f"{name}: {error}"]
    if not np.array_equal(annotations.semantic_mask(), mask):
        problems.append(f"{name}: mask disagrees with instances + meta classes")
    for inst, stored in zip(annotations.instances, sample.meta["instances"], strict=False):
        if list(inst.bbox) != stored["bbox"] or inst.area_px != stored["area_px"]:
            problems.append(
                f"{name}: instance {inst.instance_id} bbox/area in meta disagree with the instance map"
            )
    if len(annotations.instances) != len(sample.meta["instances"]):
        problems.append(
            f"{name}: meta lists {len(sample.meta['instances'])} instances, "
            f"map has {len(annotations.instances)}"
        )
    problems += _check_yolo(name, sample, annotations, dataset.classes)
    problems += _check_coco(name, coco_by_file.get(f"images/{sample.split}/{sample.id}.png"), annotations)
    return problems


def _check_yolo(
    name: str, sample: Sample, annotations: Annotations, classes: tuple[ClassInfo, ...]
) -> list[str]:
    try:
        parsed = Annotations.from_yolo(
            sample.labels_path.read_text(),
            annotations.size,
            classes,
            source=str(sample.labels_path),
        )
    except AnnotationError as error:
        return [f"{name}: {error}"]
    if [i.class_id for i in parsed.instances] != [i.class_id for i in annotations.instances]:
        return [f"{name}: YOLO labels list other classes than the masks"]
    problems = []
    for truth, label in zip(annotations.instances, parsed.instances, strict=True):
        # YOLO's single polygon bridges multi-part instances; judge by the box for those.
        if len(truth.rings) == 1 and not truth.holes and truth.area_px >= 20:
            score = iou(
                annotations.instance_map == truth.instance_id,
                parsed.instance_map == label.instance_id,
            )
            if score < 0.9:
                problems.append(
                    f"{name}: YOLO polygon of instance {truth.instance_id} has IoU {score:.2f} with its mask"
                )
    return problems


def _check_coco(name: str, coco_annotations: list[dict] | None, annotations: Annotations) -> list[str]:
    if coco_annotations is None:
        return [f"{name}: not in the COCO file"]
    if len(coco_annotations) != len(annotations.instances):
        return [
            f"{name}: COCO has {len(coco_annotations)} annotations, masks have {len(annotations.instances)}"
        ]
    for ann, inst in zip(coco_annotations, annotations.instances, strict=True):
        rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
        if not np.array_equal(
            coco_mask.decode(rle).astype(bool), annotations.instance_map == inst.instance_id
        ):
            return [f"{name}: COCO mask of instance {inst.instance_id} disagrees with the instance map"]
        if ann["bbox"] != [float(v) for v in inst.bbox]:
            return [f"{name}: COCO bbox of instance {inst.instance_id} disagrees with the instance map"]
    return []
