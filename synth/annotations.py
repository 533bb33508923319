"""The one annotation type (after supervision's `Detections`).

`Annotations` holds an image's labelled instances, is validated on construction, and converts
to and from YOLO, COCO and masks. Writers, importers and evaluation all speak it.

Geometry conventions: pixel (row r, col c) covers the continuous square [c, c+1) × [r, r+1).
Boxes are the exact pixel extent `(x, y, w, h)`. Polygon vertices are pixel centres
(c + 0.5, r + 0.5) of the boundary pixels, so filling a polygon at pixel centres gives back
the pixels it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from synth.errors import DataError

ClassKind = Literal["defect", "impurity"]


UNNAMED = 0  # class id of a region that a score map proposes, before anything names it


class AnnotationError(DataError):
    """Annotations that contradict themselves or the image."""


@dataclass(frozen=True)
class ClassInfo:
    id: int  # 1..254; 0 is background
    name: str
    kind: ClassKind = "defect"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind}


@dataclass(frozen=True)
class Instance:
    instance_id: int
    class_id: int
    bbox: tuple[int, int, int, int]  # x, y, w, h (pixel extent)
    area_px: int
    rings: tuple[np.ndarray, ...] = field(repr=False)  # outer boundaries, (N, 2) float x, y
    holes: tuple[np.ndarray, ...] = field(default=(), repr=False)
    area_mm2: float | None = None

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        """The box as (x0, y0, x1, y1), the convention of `Prediction.box`."""
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)

    def to_dict(self, classes: dict[int, ClassInfo]) -> dict[str, Any]:
        info = classes[self.class_id]
        return {
            "instance_id": self.instance_id,
            "class_id": self.class_id,
            "class_name": info.name,
            "kind": info.kind,
            "bbox": list(self.bbox),
            "area_px": self.area_px,
            "area_mm2": self.area_mm2,
            "polygons": [_round(r) for r in self.rings],
            "holes": [_round(r) for r in self.holes],
        }


@dataclass(frozen=True)
class Prediction:
    """One predicted instance, the scored sibling of `Instance`: what detectors return and what
    tiling, severity, prediction reports and detector evaluation speak.

    `box` is (x0, y0, x1, y1) in pixels; the optional boolean `mask` is a crop placed at
    `mask_origin` (x, y); `truncated` marks a box cut by a tile edge that is not an image edge.
    """

    box: tuple[float, float, float, float]
    score: float
    class_id: int
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)
    mask_origin: tuple[int, int] = (0, 0)
    truncated: bool = False


def predictions_from_ultralytics(result: Any, class_offset: int = 0) -> list[Prediction]:
    """The predictions of one ultralytics `Results`; masks become tight crops at their origin.

    `class_offset` maps YOLO's 0-based classes to ours (1 for a canonical dataset's class ids).
    """
    boxes = result.boxes
    masks = None if result.masks is None else result.masks.data.cpu().numpy() > 0.5
    found = []
    for i, (box, score, cls) in enumerate(
        zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True)
    ):
        crop, origin = None, (0, 0)
        if masks is not None and masks[i].any():
            ys, xs = np.nonzero(masks[i])
            origin = (int(xs.min()), int(ys.min()))
            crop = masks[i][origin[1] : ys.max() + 1, origin[0] : xs.max() + 1]
        found.append(Prediction(tuple(box), float(score), int(cls) + class_offset, crop, origin))
    return found


def predictions_from_map(score_map: np.ndarray, threshold: float) -> list[Prediction]:
    """The 8-connected regions of `score_map >= threshold`, in the order of their top-left-most
    pixel: exact pixel box (x0, y0, x1, y1), the region's own pixels as a mask crop at its
    origin, score = the map's maximum inside, class `UNNAMED`: the regions an anomaly map
    proposes, before a classifier names them."""
    flagged = (score_map >= threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(flagged, connectivity=8)
    regions = []
    for i in range(1, count):
        x, y, w, h = (int(v) for v in stats[i, :4])
        mask = labels[y : y + h, x : x + w] == i
        score = float(score_map[y : y + h, x : x + w][mask].max())
        regions.append(Prediction((x, y, x + w, y + h), score, UNNAMED, mask, (x, y)))
    return regions


def _round(ring: np.ndarray) -> list[list[float]]:
    return np.round(ring, 2).tolist()


def mask_rings(mask: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Outer boundaries and hole boundaries of a binary mask, as pixel-centre polygons."""
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outer, holes = [], []
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0] if len(contours) else [], strict=True):
        ring = contour[:, 0, :].astype(np.float64) + 0.5
        if len(ring) < 3:  # one- or two-pixel parts: repeat a vertex so it stays a polygon
            ring = np.concatenate([ring, ring[-1:].repeat(3 - len(ring), axis=0)])
        (holes if parent >= 0 else outer).append(ring)
    return tuple(outer), tuple(holes)


def rasterize_rings(
    rings: tuple[np.ndarray, ...] | list[np.ndarray],
    size: tuple[int, int],
    holes: tuple[np.ndarray, ...] | list[np.ndarray] = (),
) -> np.ndarray:
    """Fill polygons (pixel-centre convention) into a boolean (h, w) mask, minus hole interiors.

    Interiors combine by parity, so a part lying inside another part's hole (an island) stays
    filled. Every ring runs through the object's own pixels (a hole ring around the hole), so
    the ring pixels are painted last.
    """
    height, width = size
    mask = np.zeros((height, width), np.uint8)
    polygons = [np.round(np.asarray(r) - 0.5).astype(np.int32) for r in (*rings, *holes)]
    for polygon in polygons:
        interior = np.zeros_like(mask)
        cv2.fillPoly(interior, [polygon], 1)
        mask ^= interior
    cv2.polylines(mask, polygons, True, 1)
    return mask.astype(bool)


def bridge_rings(rings: list[np.ndarray]) -> np.ndarray:
    """Join several rings into one closed polygon by zero-width bridges between nearest
    vertices (the usual way to put multi-part or holed instances into YOLO's one polygon)."""
    merged = np.asarray(rings[0], np.float64)
    for ring in rings[1:]:
        ring = np.asarray(ring, np.float64)
        distances = np.linalg.norm(merged[:, None, :] - ring[None, :, :], axis=2)
        i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
        loop = np.concatenate([ring[j:], ring[: j + 1]])
        merged = np.concatenate([merged[: i + 1], loop, merged[i:]])
    return merged


@dataclass(frozen=True)
class YoloObject:
    """One object of a YOLO label file: its line number and text, its YOLO class (class id - 1)
    and its normalised values: `cx cy w h` of a box, or `x1 y1 x2 y2 ...` of a polygon."""

    line: int
    text: str
    yolo_class: int
    values: np.ndarray


def yolo_objects(text: str, source: str, n_classes: int | None = None) -> Iterator[YoloObject]:
    """The objects of YOLO label text, line by line, each checked as it is reached: numbers, a
    whole-number class (one of 0..n_classes - 1 when `n_classes` is given), then 4 box values or
    an even number (>= 6) of polygon values. The one YOLO parser: datasets and importers read
    label files by it. `AnnotationError` names `source:line`."""
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{source}:{number}"
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise AnnotationError(f"{where}: expected numbers, got {line.strip()!r}") from None
        if n_classes is None and not values[0].is_integer():
            raise AnnotationError(f"{where}: class {fields[0]} is not a whole number")
        if n_classes is not None and not (values[0].is_integer() and 0 <= values[0] < n_classes):
            raise AnnotationError(f"{where}: class {fields[0]} unknown, expected 0..{n_classes - 1}")
        coords = np.array(values[1:])
        if len(coords) != 4 and (len(coords) < 6 or len(coords) % 2):
            raise AnnotationError(
                f"{where}: expected 4 box values or an even number (>= 6) of polygon values, "
                f"got {len(coords)}"
            )
        yield YoloObject(number, line.strip(), int(values[0]), coords)


@dataclass(frozen=True)
class Annotations:
    """All labelled instances of one image, with the instance-id map they were made from."""

    instance_map: np.ndarray  # (h, w) uint16, 0 = none
    instances: tuple[Instance, ...]
    classes: tuple[ClassInfo, ...]
    mm_per_px: float | None = None

    def __post_init__(self) -> None:
        m = self.instance_map
        if m.ndim != 2 or m.dtype != np.uint16:
            raise AnnotationError(f"instance map must be a 2-D uint16 array, got {m.dtype} {m.shape}")
        known = {c.id for c in self.classes}
        if 0 in known or len(known) != len(self.classes):
            raise AnnotationError("class ids must be unique and non-zero")
        ids = [i.instance_id for i in self.instances]
        if len(set(ids)) != len(ids):
            raise AnnotationError(f"instance ids repeat: {sorted(ids)}")
        for inst in self.instances:
            if inst.class_id not in known:
                raise AnnotationError(
                    f"instance {inst.instance_id} has class id {inst.class_id}, known: {sorted(known)}"
                )
        present = set(np.unique(m).tolist()) - {0}
        missing = present - set(ids)
        if missing:
            raise AnnotationError(f"instance ids {sorted(missing)} are in the map but not labelled")

    @property
    def size(self) -> tuple[int, int]:
        return self.instance_map.shape  # type: ignore[return-value]

    @property
    def class_by_id(self) -> dict[int, ClassInfo]:
        return {c.id: c for c in self.classes}

    @property
    def defects(self) -> tuple[Instance, ...]:
        by_id = self.class_by_id
        return tuple(i for i in self.instances if by_id[i.class_id].kind == "defect")

    @property
    def good(self) -> bool:
        """Good = no defect; impurities do not make a part bad."""
        return not self.defects

    # --- constructors -------------------------------------------------------------------
    @classmethod
    def from_instance_map(
        cls,
        instance_map: np.ndarray,
        instance_classes: dict[int, int],
        classes: tuple[ClassInfo, ...] | list[ClassInfo],
        mm_per_px: float | None = None,
    ) -> Annotations:
        """Instances from an id map; ids missing from `instance_classes` are an error."""
        instance_map = np.ascontiguousarray(instance_map, dtype=np.uint16)
        ids = [int(i) for i in np.unique(instance_map) if i]
        unknown = [i for i in ids if i not in instance_classes]
        if unknown:
            raise AnnotationError(f"instance ids {unknown} have no class")
        instances = []
        for inst_id in ids:
            mask = instance_map == inst_id
            ys, xs = np.nonzero(mask)
            x0, y0 = int(xs.min()), int(ys.min())
            bbox = (x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1)
            rings, holes = mask_rings(mask)
            area = int(mask.sum())
            instances.append(
                Instance(
                    instance_id=inst_id,
                    class_id=instance_classes[inst_id],
                    bbox=bbox,
                    area_px=area,
                    rings=rings,
                    holes=holes,
                    area_mm2=None if mm_per_px is None else area * mm_per_px**2,
                )
            )
        return cls(instance_map, tuple(instances), tuple(classes), mm_per_px)

    @classmethod
    def from_semantic_mask(
        cls,
        mask: np.ndarray,
        classes: tuple[ClassInfo, ...] | list[ClassInfo],
        mm_per_px: float | None = None,
    ) -> Annotations:
        """One instance per 8-connected component of each class in a class-id mask."""
        known = {c.id for c in classes}
        unknown = sorted(set(np.unique(mask).tolist()) - known - {0})
        if unknown:
            raise AnnotationError(f"mask holds class ids {unknown}, known: {sorted(known)}")
        instance_map = np.zeros(mask.shape, np.uint16)
        instance_classes: dict[int, int] = {}
        for class_id in sorted(set(np.unique(mask).tolist()) - {0}):
            count, components = cv2.connectedComponents((mask == class_id).astype(np.uint8), connectivity=8)
            for component in range(1, count):
                new_id = len(instance_classes) + 1
                instance_map[components == component] = new_id
                instance_classes[new_id] = int(class_id)
        return cls.from_instance_map(instance_map, instance_classes, classes, mm_per_px)

    @classmethod
    def from_yolo(
        cls,
        text: str,
        size: tuple[int, int],
        classes: tuple[ClassInfo, ...] | list[ClassInfo],
        mm_per_px: float | None = None,
        source: str = "<labels>",
    ) -> Annotations:
        """Parse YOLO detect (`c cx cy w h`) or segment (`c x1 y1 x2 y2 ...`) lines.

        Boxes become filled rectangles; later lines are drawn over earlier ones."""
        height, width = size
        instance_map = np.zeros(size, np.uint16)
        instance_classes: dict[int, int] = {}
        for obj in yolo_objects(text, source, n_classes=len(classes)):
            if len(obj.values) == 4:
                cx, cy, w, h = obj.values * [width, height, width, height]
                region = np.zeros(size, bool)
                x0, y0 = round(cx - w / 2), round(cy - h / 2)
                region[max(0, y0) : max(0, round(y0 + h)), max(0, x0) : max(0, round(x0 + w))] = True
            else:
                region = rasterize_rings([obj.values.reshape(-1, 2) * [width, height]], size)
            if not region.any():
                continue
            new_id = len(instance_classes) + 1
            instance_map[region] = new_id
            instance_classes[new_id] = obj.yolo_class + 1  # YOLO class = class id - 1
        present = set(np.unique(instance_map).tolist())
        instance_classes = {k: v for k, v in instance_classes.items() if k in present}
        return cls.from_instance_map(instance_map, instance_classes, classes, mm_per_px)

    # --- adapters -----------------------------------------------------------------------
    def semantic_mask(self) -> np.ndarray:
        """uint8 class ids per pixel (0 = background)."""
        lut = np.zeros(int(self.instance_map.max()) + 1, np.uint8)
        for inst in self.instances:
            lut[inst.instance_id] = inst.class_id
        return lut[self.instance_map]

    def defect_mask(self) -> np.ndarray:
        """Boolean mask of defect pixels (impurities excluded): the anomaly ground truth."""
        ids = [i.instance_id for i in self.defects]
        return np.isin(self.instance_map, ids) if ids else np.zeros(self.size, bool)

    def to_yolo(self, task: Literal["detect", "segment"] = "segment") -> str:
        """YOLO label text; YOLO class = class id − 1; multi-part instances bridged."""
        height, width = self.size
        lines = []
        for inst in self.instances:
            if task == "detect":
                x, y, w, h = inst.bbox
                values = [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]
            else:
                ring = bridge_rings([*inst.rings, *inst.holes])
                values = (ring / [width, height]).ravel().tolist()
            lines.append(" ".join([str(inst.class_id - 1), *(f"{v:.6f}" for v in values)]))
        return "\n".join(lines) + ("\n" if lines else "")

    def coco_rle(self, inst: Instance) -> dict[str, Any]:
        """Exact RLE: COCO polygons rasterise with another pixel convention and lose thin
        scratches, so the pixel-exact masks go to COCO as RLE (pycocotools reads both)."""
        rle = coco_mask.encode(np.asfortranarray(self.instance_map == inst.instance_id, np.uint8))
        return {"size": list(rle["size"]), "counts": rle["counts"].decode()}

    def to_coco(self, image_id: int, first_annotation_id: int) -> list[dict[str, Any]]:
        return [
            {
                "id": first_annotation_id + n,
                "image_id": image_id,
                "category_id": inst.class_id,
                "bbox": [float(v) for v in inst.bbox],
                "area": float(inst.area_px),
                "iscrowd": 0,
                "segmentation": self.coco_rle(inst),
            }
            for n, inst in enumerate(self.instances)
        ]

    def to_meta(self) -> list[dict[str, Any]]:
        by_id = self.class_by_id
        return [{**inst.to_dict(by_id), "rle": self.coco_rle(inst)} for inst in self.instances]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
