"""Read a canonical dataset, and verify one (`synth verify DIR`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from pycocotools import mask as coco_mask

from synth.annotations import AnnotationError, Annotations, ClassInfo, iou
from synth.config import FUSED_VIEWS, SPLITS
from synth.errors import DataError, DefectsynthError, ModelError
from synth.images import read_image
from synth.writers import FORMAT, read_metas, yolo_obb_labels


class DatasetError(DataError):
    """A directory that is not a usable canonical dataset."""


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
    def obb_labels_path(self) -> Path:
        return self._path("labels_obb", ".txt")

    @property
    def good(self) -> bool:
        return bool(self.meta["good"])

    @property
    def setups(self) -> list[str]:
        """The light set-ups of a burst sample, in order; [] for one image."""
        return list(self.meta.get("bursts", []))

    def burst_path(self, setup: str) -> Path:
        return self._path("images", f"_{setup}.png")

    def image(self, view: str | None = None) -> np.ndarray:
        """The sample's image (for a burst, its first set-up), or with `view`: one set-up by
        name, the set-ups fused per pixel (`max`, `mean`) or stacked (`channels`: each set-up's
        grey as one channel, (H, W, set-ups)). A sample without bursts (a photograph) has one
        image, taken under whatever light it was: every view of it is that image, so a model
        trained on a view of bursts can be scored on single-light photographs."""
        if view is None or not self.setups:
            return read_image(self.image_path)
        if view in self.setups:
            return read_image(self.burst_path(view))
        if view not in FUSED_VIEWS:
            raise DatasetError(
                f"{self.split}/{self.id}: no light set-up {view!r}; it has {self.setups} "
                f"(or fuse them: {', '.join(FUSED_VIEWS)})"
            )
        images = np.stack([read_image(self.burst_path(name)) for name in self.setups])
        if view == "max":
            return images.max(axis=0)
        if view == "mean":
            return np.rint(images.mean(axis=0)).astype(np.uint8)
        return np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in images], axis=2)

    def mask(self) -> np.ndarray:
        return read_png(self.mask_path)

    def instance_map(self) -> np.ndarray:
        return read_png(self.instances_path).astype(np.uint16)

    def annotations(self, classes: tuple[ClassInfo, ...]) -> Annotations:
        instance_classes = {i["instance_id"]: i["class_id"] for i in self.meta["instances"]}
        return Annotations.from_instance_map(
            self.instance_map(), instance_classes, classes, self.meta.get("mm_per_px")
        )


def sample_at(path: Path) -> Sample:
    """The sample whose image is `images/<split>/<id>.png` of a canonical dataset."""
    path = Path(path)
    meta = (
        path.parents[2] / "meta" / path.parent.name / f"{path.stem}.json" if len(path.parents) > 2 else None
    )
    if meta is None or path.parent.parent.name != "images" or not meta.is_file():
        raise DatasetError(f"{path}: not a sample image of a canonical dataset, so it has no burst views")
    return Sample(path.stem, path.parent.name, path.parents[2], json.loads(meta.read_text()))


def read_view(path: Path, view: str | None) -> np.ndarray:
    """An image file as `Sample.image(view)` reads it; a view needs a canonical dataset's sample."""
    return read_image(path) if view is None else sample_at(path).image(view)


class Dataset:
    """A canonical dataset root (docs/CONTRACTS.md)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / "dataset.json"
        if not info_path.exists():
            raise DatasetError(f"{self.root}: not a defectsynth dataset (no dataset.json)")
        try:
            self.info = json.loads(info_path.read_text())
        except ValueError as error:
            raise DatasetError(f"{info_path}: not valid JSON ({error})") from None
        if not isinstance(self.info, dict) or self.info.get("format") != FORMAT:
            found = self.info.get("format") if isinstance(self.info, dict) else None
            raise DatasetError(f"{info_path}: format {found!r}, expected {FORMAT!r}")
        self.classes = tuple(ClassInfo(**c) for c in self.info["classes"])

    @property
    def splits(self) -> dict[str, int]:
        return {s: len(self.samples(s)) for s in SPLITS}

    def samples(self, split: str) -> list[Sample]:
        return [Sample(m["id"], split, self.root, m) for m in read_metas(self.root, split)]


def require_classes(
    model: tuple[str | Path, list[str]], data: tuple[str | Path, list[str]], subset: bool = False
) -> None:
    """The one check of a model's classes against a dataset's (or another dataset's), for every
    command that pairs them: the same names in the same order, or with `subset` (a classifier,
    whose ids are its own) every class of the data one of the model's. Each is (file, names)."""
    (model_file, model_names), (data_file, data_names) = model, data
    if subset and set(data_names) <= set(model_names) or not subset and model_names == data_names:
        return
    expected = "every one of the data's must be one of them" if subset else "both must be the same, in order"
    raise ModelError(f"class names: {model_file} has {model_names}, {data_file} has {data_names}; {expected}")


def verify(root: str | Path) -> list[str]:
    """Every integrity problem of a dataset, as readable lines (empty list = healthy).

    Never stops at the first problem: a damaged file is one line, and the checks go on.
    """
    try:
        dataset = Dataset(root)
    except DatasetError as error:
        return [str(error)]
    problems: list[str] = []
    known = {c.id for c in dataset.classes}
    samples: dict[str, list[Sample]] = {}
    for split in SPLITS:
        samples[split], bad_metas = _read_samples(dataset.root, split)
        problems += bad_metas
        coco_by_file, coco_problems = _read_coco(dataset.root, split, bool(samples[split]))
        problems += coco_problems
        for sample in samples[split]:
            try:
                problems += _verify_sample(dataset, sample, known, coco_by_file)
            except (DefectsynthError, OSError, ValueError, KeyError, TypeError) as error:
                problems.append(f"{split}/{sample.id}: cannot be checked ({error})")
        metas = {p.stem for p in (dataset.root / "meta" / split).glob("*.json")}
        bursts = {s.burst_path(name).stem for s in samples[split] for name in s.setups}
        stray = {p.stem for p in (dataset.root / "images" / split).glob("*.png")} - metas - bursts
        problems += [f"images/{split}/{s}.png: image without meta (unfinished sample)" for s in sorted(stray)]
    problems += _check_splits_disjoint(samples)
    problems += _check_counts(dataset, samples)
    problems += _check_data_yaml(dataset, samples)
    return problems


META_KEYS = ("id", "width", "height", "good", "instances")


def _read_samples(root: Path, split: str) -> tuple[list[Sample], list[str]]:
    """The samples of a split whose meta file is usable, and a line for each that is not."""
    samples, problems = [], []
    for path in sorted((root / "meta" / split).glob("*.json")):
        name, text = f"meta/{split}/{path.name}", ""
        try:
            text = path.read_text()
            meta = json.loads(text)
        except (OSError, ValueError) as error:
            problems.append(f"{name}: {'empty file' if not text else f'unreadable ({error})'}")
            continue
        missing = [k for k in META_KEYS if k not in meta] if isinstance(meta, dict) else list(META_KEYS)
        if missing:
            problems.append(f"{name}: lacks {', '.join(missing)}")
        elif meta["id"] != path.stem:
            problems.append(f"{name}: says id {meta['id']!r}")
        else:
            samples.append(Sample(path.stem, split, root, meta))
    return samples, problems


def _read_coco(root: Path, split: str, needed: bool) -> tuple[dict[str, list[dict]] | None, list[str]]:
    """A split's COCO annotations by file name; None (and the problem) when missing or damaged."""
    path = root / "coco" / f"{split}.json"
    if not path.exists():
        return None, [
            f"coco/{split}.json: missing (run `synth render` again to finish the dataset)"
        ] if needed else []
    try:
        return _coco_index(json.loads(path.read_text())), []
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, [f"coco/{split}.json: unreadable ({error})"]


def _check_splits_disjoint(samples: dict[str, list[Sample]]) -> list[str]:
    """An id in two splits is one image in train and val: the evaluation would be leaked."""
    splits_of: dict[str, list[str]] = {}
    for split, items in samples.items():
        for sample in items:
            splits_of.setdefault(sample.id, []).append(split)
    return [
        f"sample {image_id} is in more than one split: {', '.join(splits)}"
        for image_id, splits in sorted(splits_of.items())
        if len(splits) > 1
    ]


def _check_counts(dataset: Dataset, samples: dict[str, list[Sample]]) -> list[str]:
    """dataset.json's counts against the samples, and those against the recorded config."""
    recorded, good = dataset.info.get("splits") or {}, dataset.info.get("good") or {}
    if not recorded:
        problems = [
            "dataset.json: no split counts: the dataset was never finalized "
            "(run the same `synth render` again to finish it)"
        ]
    else:
        problems = []
        for split, items in samples.items():
            found = (len(items), sum(s.good for s in items))
            listed = (recorded.get(split, 0), good.get(split, 0))
            if found != listed:
                problems.append(
                    f"dataset.json: {split} lists {listed[0]} samples ({listed[1]} good), "
                    f"found {found[0]} ({found[1]} good)"
                )
    for split, expected in _expected_counts(dataset.info.get("source")).items():
        found = len(samples[split])
        if found < expected:
            problems.append(
                f"{split}: {found} of the {expected} samples the recorded config makes "
                "(an unfinished render: run the same command again to finish it)"
            )
        elif found > expected:
            problems.append(f"{split}: {found} samples, but the recorded config makes only {expected}")
    return problems


def _check_data_yaml(dataset: Dataset, samples: dict[str, list[Sample]]) -> list[str]:
    """dataset.yaml, which Ultralytics trains from: a mapping with the classes as `names` and
    each split's images (`images/<split>`, or `images/<split>.txt` for bursts). It is written by
    finalize, so an unfinalized dataset (reported by the counts) is not checked."""
    if not dataset.info.get("splits"):
        return []
    path = dataset.root / "dataset.yaml"
    again = "run the command that made the dataset again to rewrite it"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as error:
        reason = "missing" if not path.exists() else f"unreadable ({str(error).splitlines()[0]})"
        return [f"dataset.yaml: {reason}; {again}"]
    if not isinstance(data, dict):
        return [f"dataset.yaml: expected a mapping with path, splits and names; {again}"]
    problems = []
    names = {c.id - 1: c.name for c in dataset.classes}
    if data.get("names") != names:
        problems.append(f"dataset.yaml: names {data.get('names')!r}, but the classes are {names}; {again}")
    for split, items in samples.items():
        expected = f"images/{split}.txt" if any(s.setups for s in items) else f"images/{split}"
        if data.get(split) != expected:
            problems.append(f"dataset.yaml: {split} is {data.get(split)!r}, expected {expected!r}; {again}")
    return problems


def _recorded_config(source: object) -> dict | None:
    """The scene config a render recorded in dataset.json's `source` (None for imported datasets)."""
    config = source.get("config") if isinstance(source, dict) else None
    return config if isinstance(config, dict) else None


def _recorded_setups(source: object) -> list[str] | None:
    """The light set-ups of the scene config a render recorded (None for imported datasets)."""
    config = _recorded_config(source)
    return None if config is None else [b["name"] for b in config.get("bursts") or []]


def _expected_counts(source: object) -> dict[str, int]:
    """Split sizes of the scene config a render recorded (none for imported datasets)."""
    config = _recorded_config(source)
    splits = config.get("splits") if config is not None else None
    if not isinstance(splits, dict):
        return {}
    return {s: int(c["count"]) for s, c in splits.items() if s in SPLITS and isinstance(c, dict)}


def _coco_index(coco: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    return {img["file_name"]: by_image.get(img["id"], []) for img in coco["images"]}


def _verify_sample(
    dataset: Dataset, sample: Sample, known: set[int], coco_by_file: dict[str, list[dict]] | None
) -> list[str]:
    name = f"{sample.split}/{sample.id}"
    paths = [sample.image_path, sample.mask_path, sample.instances_path, sample.labels_path]
    paths += [sample.obb_labels_path, *(sample.burst_path(s) for s in sample.setups)]
    missing = [str(p.relative_to(dataset.root)) for p in paths if not p.exists()]
    if missing:
        return [f"{name}: missing {', '.join(missing)}"]
    pngs = {"image": sample.image_path, "mask": sample.mask_path, "instances": sample.instances_path}
    pngs.update({f"set-up {s} image": sample.burst_path(s) for s in sample.setups})
    expected = _recorded_setups(dataset.info.get("source"))
    if expected is not None and sample.setups != expected:
        return [f"{name}: meta lists light set-ups {sample.setups}, the recorded config {expected}"]
    arrays = {label: cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for label, path in pngs.items()}
    unreadable = [str(pngs[label].relative_to(dataset.root)) for label, a in arrays.items() if a is None]
    if unreadable:
        return [f"{name}: cannot read {', '.join(unreadable)} (damaged or truncated)"]
    problems = []
    mask = arrays["mask"]
    size = (sample.meta["height"], sample.meta["width"])
    for label, array in arrays.items():
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
    problems += _check_obb(name, sample, annotations)
    if coco_by_file is not None:  # else the COCO file is reported once
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


def _check_obb(name: str, sample: Sample, annotations: Annotations) -> list[str]:
    """The OBB labels against the oriented boxes of the instance map: count, class, corners."""
    found = [line.split() for line in sample.obb_labels_path.read_text().splitlines() if line.strip()]
    expected = [line.split() for line in yolo_obb_labels(annotations).splitlines()]
    if len(found) != len(expected):
        return [f"{name}: OBB labels list {len(found)} boxes, masks have {len(expected)} instances"]
    for number, (line, truth) in enumerate(zip(found, expected, strict=True), 1):
        where = f"{name}: labels_obb line {number}"
        if len(line) != 9:
            return [f"{where}: expected 9 values (class and 4 corners), got {len(line)}"]
        try:
            corners = [float(v) for v in line[1:]]
        except ValueError:
            return [f"{where}: expected numbers, got {' '.join(line)!r}"]
        if line[0] != truth[0]:
            return [f"{where}: class {line[0]}, the mask says {truth[0]}"]
        if not np.allclose(corners, [float(v) for v in truth[1:]], atol=1e-5, rtol=0):
            return [f"{where}: not the minimum-area rectangle of its mask"]
    return []


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
