"""Write the canonical dataset layout (DESIGN §3, docs/CONTRACTS.md).

Every file is written atomically (temp file + rename), and a sample's meta JSON is written
last: a sample with a meta file is complete, so an interrupted run resumes by skipping those.
Dataset-wide files (COCO, dataset.json, the anomaly view) are rebuilt from the per-sample meta
files by `finalize`, which is why shards rendered apart merge into one dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from synth.annotations import Annotations, ClassInfo

FORMAT = "defectsynth-1"
SPLITS = ("train", "val", "test")


def _file_mode() -> int:
    """The permissions a plain open() would give (mkstemp alone makes files private)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=_json_default) + "\n")


def _json_default(value: object) -> object:
    """numpy scalars and paths, which metrics and specs carry, as plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def atomic_write_png(path: Path, image: np.ndarray) -> None:
    """PNG of a uint8 (grey or RGB) or uint16 (grey) array; RGB input, not BGR."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    atomic_write_bytes(path, buffer.tobytes())


class DatasetWriter:
    """Writes samples of one dataset; safe to run again on the same root (resume)."""

    def __init__(
        self,
        root: str | Path,
        classes: list[ClassInfo] | tuple[ClassInfo, ...],
        source: dict[str, Any],
    ):
        self.root = Path(root)
        self.classes = tuple(classes)
        self.source = source
        existing = self.root / "dataset.json"
        if existing.exists():
            stored = json.loads(existing.read_text())
            stored_classes = [ClassInfo(**c).to_dict() for c in stored["classes"]]
            if stored_classes != [c.to_dict() for c in self.classes]:
                raise ValueError(
                    f"{existing}: this dataset was written with other classes "
                    f"({[c['name'] for c in stored_classes]}); use a new --out directory"
                )
        self._write_dataset_json(counts={}, good={})

    def path(self, kind: str, split: str, image_id: str) -> Path:
        suffix = {"labels": ".txt", "meta": ".json"}.get(kind, ".png")
        return self.root / kind / split / f"{image_id}{suffix}"

    def has(self, split: str, image_id: str) -> bool:
        return self.path("meta", split, image_id).exists()

    def write(
        self,
        split: str,
        image_id: str,
        image: np.ndarray,
        annotations: Annotations,
        spec: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if image.shape[:2] != annotations.size:
            raise ValueError(
                f"{split}/{image_id}: image is {image.shape[:2]} but annotations are {annotations.size}"
            )
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        atomic_write_png(self.path("images", split, image_id), image)
        atomic_write_png(self.path("masks", split, image_id), annotations.semantic_mask())
        atomic_write_png(self.path("instances", split, image_id), annotations.instance_map)
        atomic_write_text(self.path("labels", split, image_id), annotations.to_yolo("segment"))
        meta = {
            "id": image_id,
            "split": split,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "mm_per_px": annotations.mm_per_px,
            "good": annotations.good,
            "instances": annotations.to_meta(),
            "spec": spec,
            **(extra or {}),
        }
        atomic_write_json(self.path("meta", split, image_id), meta)

    def finalize(self) -> dict[str, int]:
        """Rebuild COCO files, dataset.json/.yaml and the anomaly view from all samples."""
        counts, good = {}, {}
        for split in SPLITS:
            metas = read_metas(self.root, split)
            counts[split] = len(metas)
            good[split] = sum(m["good"] for m in metas)
            atomic_write_json(self.root / "coco" / f"{split}.json", self._coco(split, metas))
        self._write_dataset_json(counts, good)
        names = {c.id - 1: c.name for c in self.classes}
        data_yaml = {
            "path": str(self.root.resolve()),
            **{s: f"images/{s}" for s in SPLITS},
            "names": names,
        }
        atomic_write_text(self.root / "dataset.yaml", yaml.safe_dump(data_yaml, sort_keys=False))
        self._anomaly_view()
        return counts

    def _write_dataset_json(self, counts: dict[str, int], good: dict[str, int]) -> None:
        atomic_write_json(
            self.root / "dataset.json",
            {
                "format": FORMAT,
                "classes": [c.to_dict() for c in self.classes],
                "splits": counts,
                "good": good,
                "source": self.source,
            },
        )

    def _coco(self, split: str, metas: list[dict[str, Any]]) -> dict[str, Any]:
        images, annotations = [], []
        for number, meta in enumerate(metas, 1):
            images.append(
                {
                    "id": number,
                    "file_name": f"images/{split}/{meta['id']}.png",
                    "width": meta["width"],
                    "height": meta["height"],
                }
            )
            for inst in meta["instances"]:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": number,
                        "category_id": inst["class_id"],
                        "bbox": [float(v) for v in inst["bbox"]],
                        "area": float(inst["area_px"]),
                        "iscrowd": 0,
                        "segmentation": inst["rle"],
                    }
                )
        categories = [{"id": c.id, "name": c.name, "supercategory": c.kind} for c in self.classes]
        return {"images": images, "annotations": annotations, "categories": categories}

    def _anomaly_view(self) -> None:
        """MVTec-style folders anomalib's Folder/MVTec datamodules read directly."""
        view = self.root / "anomaly"
        if view.exists():
            shutil.rmtree(view)
        by_id = {c.id: c for c in self.classes}
        for split, folder in (("train", "train"), ("test", "test")):
            for meta in read_metas(self.root, split):
                image = self.path("images", split, meta["id"])
                defects = [i for i in meta["instances"] if by_id[i["class_id"]].kind == "defect"]
                if not defects:
                    _link(image, view / folder / "good" / image.name)
                    continue
                if split == "train":
                    continue
                name = max(defects, key=lambda i: i["area_px"])["class_name"]
                _link(image, view / "test" / name / image.name)
                instance_map = cv2.imread(
                    str(self.path("instances", split, meta["id"])), cv2.IMREAD_UNCHANGED
                )
                truth = np.isin(instance_map, [i["instance_id"] for i in defects]).astype(np.uint8) * 255
                atomic_write_png(view / "ground_truth" / name / f"{meta['id']}_mask.png", truth)


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def read_metas(root: Path, split: str) -> list[dict[str, Any]]:
    folder = Path(root) / "meta" / split
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
