"""Importers of real datasets into the canonical layout (DESIGN §3, §8): `evaluate import`.

Every format is reduced to one thing, a `Source`: its class names and a list of
`SourceItem`s (an image file plus a function that reads its labels as `Annotations`), and
is then written by one function through `synth.writers.DatasetWriter`. Formats:

- `mvtec`: an MVTec AD category (`train/good`, `test/<class>`,
  `ground_truth/<class>/<stem>_mask.png`);
- `folders`: class folders of image + mask pairs (as magnetic_tile: `MT_<class>/Imgs/x.jpg`
  with its mask `x.png`, or `x.png` with `x_mask.png`); a folder named good / free / ok /
  normal holds defect-free images; a prefix shared by all folder names (`MT_`) is dropped;
- `yolo`: YOLO detect (boxes) or segment (polygons), `images/...` beside `labels/...`;
- `coco`: a COCO instances JSON (polygons, RLE, or the box when there is no segmentation);
- `labelme`: LabelMe JSON files (polygon, rectangle and circle shapes).

Images may be grey, grey+alpha, RGB(A), 8 or 16 bit: they are stored as 8-bit RGB (alpha
dropped, 16 bit scaled by 255/65535). Files that cannot be read are skipped and listed in
`import_report.json`; a mask of another size than its image stops the import with an error
naming both files. Source splits are not kept: every importer re-splits its images into
train/val/test with a seed, stratified by class and optionally by a group taken from the
file name (such as magnetic_tile's `exp<k>` capture condition).
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np
import yaml
from tqdm import tqdm

from synth.annotations import AnnotationError, Annotations, ClassInfo
from synth.errors import DataError
from synth.writers import DatasetWriter, atomic_write_json

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
GOOD_NAMES = {"good", "free", "ok", "normal", "defect_free", "nodefect"}
SPLITS = ("train", "val", "test")
FORMATS = ("mvtec", "folders", "yolo", "coco", "labelme")

# Reads an item's labels, given the image size (h, w) and the dataset's classes.
LabelReader = Callable[[tuple[int, int], tuple[ClassInfo, ...]], Annotations]


class ImportFailure(DataError):
    """A user-facing import error: the message names the file(s) and what was expected."""


class Unreadable(Exception):
    """A file that cannot be read; its sample is skipped and listed in the report."""


@dataclass(frozen=True)
class SourceItem:
    """One source image, the class it is stratified by, and how to read its labels."""

    id: str
    image: Path
    stratum: str
    read_labels: LabelReader
    image_in_json: bool = False  # `image` is a LabelMe JSON whose base64 imageData is the image


@dataclass(frozen=True)
class Source:
    """A scanned source dataset: class names (ids 1.. in this order) and its images."""

    format: str
    class_names: list[str]
    items: list[SourceItem]


# ----------------------------------------------------------------- reading files


def read_image(path: Path, in_json: bool = False) -> np.ndarray:
    """Any grey / grey+alpha / RGB(A), 8 or 16 bit image file as 8-bit RGB.

    `in_json`: `path` is a LabelMe JSON carrying the encoded image as base64 `imageData`; it is
    decoded here, when the image is needed, so that scanning holds no pixels and leaves no files.
    """
    img = _decode_embedded(path) if in_json else _decode(path)
    if img is None:
        raise Unreadable(f"{path}: not a readable image")
    img = _to_uint8(img, path)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 2:  # grey + alpha
        return cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(img, code)


def _decode(path: Path) -> np.ndarray | None:
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.empty(0, np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None


def _decode_embedded(js: Path) -> np.ndarray | None:
    try:
        data = base64.b64decode(json.loads(js.read_text())["imageData"], validate=True)
    except (OSError, ValueError, KeyError, TypeError):  # binascii.Error is a ValueError
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None


def _to_uint8(img: np.ndarray, path: Path) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img.astype(np.float32) * (255.0 / 65535.0)).round().astype(np.uint8)
    raise Unreadable(f"{path}: unsupported pixel type {img.dtype}")


def read_binary_mask(mask_path: Path, image_path: Path, size: tuple[int, int]) -> np.ndarray:
    """A mask file as booleans (>= half the value range in any colour channel), checked
    against the size (h, w) of its image."""
    mask = _decode(mask_path)
    if mask is None:
        raise Unreadable(f"{mask_path}: not a readable mask image")
    if mask.shape[:2] != size:
        raise ImportFailure(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} px but its image "
            f"{image_path} is {size[1]}x{size[0]} px; they must have the same size"
        )
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2) if mask.shape[2] >= 3 else mask[..., 0]
    half = 128 if mask.dtype == np.uint8 else (int(np.iinfo(mask.dtype).max) + 1) // 2
    return mask >= half


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


def _mask_reader(mask: Path, image: Path, name: str) -> LabelReader:
    """One class mask: each 8-connected component becomes an instance of `name`."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Annotations:
        class_id = next(c.id for c in classes if c.name == name)
        binary = read_binary_mask(mask, image, size)
        return Annotations.from_semantic_mask(binary.astype(np.uint8) * class_id, classes)

    return read


def _no_labels(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Annotations:
    return Annotations.from_instance_map(np.zeros(size, np.uint16), {}, classes)


def _sample_id(rel: Path) -> str:
    """A file-system-safe sample id from a path relative to the source root."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(rel.with_suffix("").parts))


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise ImportFailure(f"{path}: expected {what} (a folder), found none")


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
                sid = _sample_id(image.relative_to(src))
                if name == "good":
                    items.append(SourceItem(sid, image, "good", _no_labels))
                else:
                    mask = src / "ground_truth" / class_dir.name / f"{image.stem}_mask.png"
                    items.append(SourceItem(sid, image, name, _mask_reader(mask, image, name)))
    return Source("mvtec", names, items)


def scan_class_folders(src: Path) -> Source:
    """Top-level class folders holding images and their masks (same stem, or <stem>_mask)."""
    _require_dir(src, "a folder of class folders")
    folders = sorted(p for p in src.iterdir() if p.is_dir())
    if not folders:
        raise ImportFailure(f"{src}: expected one folder per class, found no folder")
    prefix = _common_prefix([f.name for f in folders])
    items, names = [], []
    for folder in folders:
        name = folder.name[len(prefix) :].lower()
        good = name in GOOD_NAMES
        if not good:
            names.append(name)
        for image, mask in _image_mask_pairs(folder):
            sid = _sample_id(image.relative_to(src))
            if good:
                items.append(SourceItem(sid, image, "good", _no_labels))
            elif mask is None:
                items.append(SourceItem(sid, image, name, _missing_mask(image)))
            else:
                items.append(SourceItem(sid, image, name, _mask_reader(mask, image, name)))
    return Source("folders", names, items)


def _missing_mask(image: Path) -> LabelReader:
    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Annotations:
        raise Unreadable(f"{image}: no mask beside it in a defect class folder")

    return read


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


def scan_yolo(src: Path, names: Sequence[str] | None = None) -> Source:
    """YOLO detect or segment: every image under images/ with labels/…/<stem>.txt beside it.

    Class names come from `names`, else from a data yaml in `src`, else class0, class1, …
    """
    _require_dir(src / "images", "YOLO images/")
    labels = {}
    for image in _images_under(src / "images"):
        rel = image.relative_to(src / "images")
        labels[image] = src / "labels" / rel.with_suffix(".txt")
    first_class = {image: _first_yolo_class(label) for image, label in labels.items()}
    class_names = list(names or _yolo_yaml_names(src))
    n_classes = max([c + 1 for c in first_class.values() if c is not None], default=1)
    class_names += [f"class{c}" for c in range(len(class_names), n_classes)]
    items = []
    for image, label in labels.items():
        c = first_class[image]
        stratum = "good" if c is None else class_names[c] if c < len(class_names) else f"class{c}"
        sid = _sample_id(image.relative_to(src / "images"))
        items.append(SourceItem(sid, image, stratum, _yolo_reader(label)))
    return Source("yolo", class_names, items)


def _first_yolo_class(label: Path) -> int | None:
    """The class of a label file's first line (None when empty, missing or unreadable)."""
    try:
        first = label.read_text().split(maxsplit=1)
        return int(first[0]) if first else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _yolo_yaml_names(src: Path) -> list[str]:
    """Class names from an Ultralytics data yaml in the root (names: list or {id: name})."""
    for data in sorted(src.glob("*.yaml")) + sorted(src.glob("*.yml")):
        try:
            loaded = yaml.safe_load(data.read_text())
        except yaml.YAMLError as e:
            raise ImportFailure(f"{data}: not valid YAML ({e})") from e
        names = loaded.get("names") if isinstance(loaded, dict) else None
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        if isinstance(names, list):
            return [str(n) for n in names]
    return []


def _yolo_reader(label: Path) -> LabelReader:
    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Annotations:
        if not label.is_file():
            return _no_labels(size, classes)
        try:
            return Annotations.from_yolo(label.read_text(), size, classes, source=str(label))
        except (OSError, UnicodeDecodeError, AnnotationError) as e:
            raise Unreadable(str(e) if isinstance(e, AnnotationError) else f"{label}: {e}") from e

    return read


def scan_coco(annotation_file: Path, image_root: Path | None = None) -> Source:
    """COCO instances JSON; images are looked up relative to `image_root` (default: its folder)."""
    try:
        coco = json.loads(annotation_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImportFailure(f"{annotation_file}: not a readable COCO JSON ({e})") from e
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco, dict) or key not in coco:
            raise ImportFailure(f"{annotation_file}: COCO field '{key}' is missing")
    root = image_root or annotation_file.parent
    cats = {c["id"]: str(c["name"]) for c in sorted(coco["categories"], key=lambda c: c["id"])}
    anns: dict[int, list[dict]] = defaultdict(list)
    for a in coco["annotations"]:
        anns[a["image_id"]].append(a)
    items = []
    for img in sorted(coco["images"], key=lambda i: i["file_name"]):
        image_anns = anns.get(img["id"], [])
        stratum = cats[image_anns[0]["category_id"]] if image_anns else "good"
        rel = Path(img["file_name"])
        items.append(SourceItem(_sample_id(rel), root / rel, stratum, _coco_reader(image_anns, cats)))
    return Source("coco", list(cats.values()), items)


def _coco_reader(annotations: list[dict], cats: dict[int, str]) -> LabelReader:
    """Masks rasterised by pycocotools (COCO's own polygon convention), or the box."""
    from pycocotools import mask as mask_utils

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Annotations:
        h, w = size
        masks = []
        for a in annotations:
            seg = a.get("segmentation")
            if seg:
                compressed = isinstance(seg, dict) and not isinstance(seg.get("counts"), list)
                rles = seg if compressed else mask_utils.frPyObjects(seg, h, w)
                mask = mask_utils.decode(mask_utils.merge(rles) if isinstance(rles, list) else rles)
            else:
                x, y, bw, bh = a["bbox"]
                mask = np.zeros(size, np.uint8)
                mask[int(y) : int(np.ceil(y + bh)), int(x) : int(np.ceil(x + bw))] = 1
            masks.append((cats[a["category_id"]], mask.astype(bool)))
        return from_masks(masks, size, classes)

    return read


LABELME_SHAPES = {"polygon", "rectangle", "circle"}


def scan_labelme(src: Path) -> Source:
    """LabelMe JSON files under `src`, each naming its image (imagePath, or embedded imageData).

    JSON files that are not LabelMe documents (no `shapes` list) are passed over.
    """
    _require_dir(src, "a folder of LabelMe JSON files")
    items, names = [], []
    for js in sorted(src.rglob("*.json")):
        try:
            doc = json.loads(js.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
            continue
        shapes = [s for s in doc["shapes"] if s.get("shape_type", "polygon") in LABELME_SHAPES]
        names += [str(s["label"]) for s in shapes if str(s["label"]) not in names]
        image = js.parent / str(doc.get("imagePath") or "")
        in_json = not image.is_file() and bool(doc.get("imageData"))
        stratum = str(shapes[0]["label"]) if shapes else "good"
        item_id = _sample_id(js.relative_to(src))
        items.append(SourceItem(item_id, js if in_json else image, stratum, _labelme_reader(shapes), in_json))
    return Source("labelme", names, items)


def _labelme_reader(shapes: list[dict]) -> LabelReader:
    """LabelMe points are pixel coordinates; shapes are filled including their outline."""

    def read(size: tuple[int, int], classes: tuple[ClassInfo, ...]) -> Annotations:
        masks = []
        for s in shapes:
            pts = np.asarray(s["points"], np.float64).reshape(-1, 2)
            mask = np.zeros(size, np.uint8)
            kind = s.get("shape_type", "polygon")
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
            masks.append((str(s["label"]), mask.astype(bool)))
        return from_masks(masks, size, classes)

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
    regex = re.compile(group_pattern) if group_pattern else None
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


# ----------------------------------------------------------------- writing


def scan(fmt: str, src: Path, names: Sequence[str] | None = None, images: Path | None = None) -> Source:
    """Scan a source of the given format (one of FORMATS)."""
    if not src.exists():
        raise ImportFailure(f"{src}: no such file or folder")
    if fmt == "mvtec":
        return scan_mvtec(src)
    if fmt == "folders":
        return scan_class_folders(src)
    if fmt == "yolo":
        return scan_yolo(src, names)
    if fmt == "coco":
        return scan_coco(src, images)
    if fmt == "labelme":
        return scan_labelme(src)
    raise ImportFailure(f"unknown format {fmt!r}, expected one of {', '.join(FORMATS)}")


def import_dataset(
    source: Source,
    out: Path,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    group_pattern: str | None = None,
    impurities: Sequence[str] = (),
) -> dict:
    """Write a scanned source as a canonical dataset; returns (and saves) the import report.

    Samples already written (a rerun into the same folder) are kept, not re-read. A sample
    whose source says "defective" (a defect class folder) but whose mask is empty is
    skipped and listed: it would otherwise count as a good image.
    """
    unknown = sorted(set(impurities) - set(source.class_names))
    if unknown:
        raise ImportFailure(f"impurity classes {unknown} are not among {source.class_names}")
    ids = [item.id for item in source.items]
    if len(set(ids)) != len(ids):
        raise ImportFailure(f"two source files map to the same sample id: {_first_repeat(ids)}")
    classes = tuple(
        ClassInfo(i, name, "impurity" if name in impurities else "defect")
        for i, name in enumerate(source.class_names, 1)
    )
    split_of = assign_splits(source.items, fractions, seed, group_pattern)
    writer = DatasetWriter(
        out,
        classes,
        source={
            "importer": source.format,
            "seed": seed,
            "fractions": list(fractions),
            "group_pattern": group_pattern,
        },
    )
    skipped = []
    for item in tqdm(source.items, desc=f"importing {source.format}", unit="img"):
        split = split_of[item.id]
        if writer.has(split, item.id):
            continue
        try:
            image = read_image(item.image, item.image_in_json)
            annotations = item.read_labels(image.shape[:2], classes)
        except Unreadable as e:
            skipped.append({"file": str(item.image), "reason": str(e)})
            continue
        if item.stratum != "good" and not annotations.instances:
            skipped.append({"file": str(item.image), "reason": f"empty mask in class {item.stratum}"})
            continue
        writer.write(split, item.id, image, annotations, spec={"source_file": str(item.image)})
    counts = writer.finalize()
    report = {
        "format": source.format,
        "classes": [c.to_dict() for c in classes],
        "splits": counts,
        "imported": sum(counts.values()),
        "skipped": skipped,
    }
    atomic_write_json(out / "import_report.json", report)
    return report


def _first_repeat(ids: Sequence[str]) -> str:
    seen: set[str] = set()
    return next(i for i in ids if i in seen or seen.add(i))


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Dataset folder to write.")
@click.option("--seed", default=0, show_default=True, help="Seed of the train/val/test split.")
@click.option(
    "--split",
    "fractions",
    nargs=3,
    type=float,
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
@click.option("--names", default=None, help="YOLO: comma-separated class names (else the data yaml).")
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    default=None,
    help="COCO: image folder (else the JSON's folder).",
)
def import_data(
    fmt: str,
    src: Path,
    out: Path,
    seed: int,
    fractions: tuple[float, float, float],
    group_pattern: str | None,
    impurities: tuple[str, ...],
    names: str | None,
    images: Path | None,
) -> None:
    """Import real data (FORMAT: mvtec, folders, yolo, coco, labelme) into the canonical layout."""
    try:
        source = scan(fmt, src, names.split(",") if names else None, images)
        report = import_dataset(source, out, fractions, seed, group_pattern, impurities)
    except (ImportFailure, re.error) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"imported {report['imported']} images into {out}: {report['splits']}")
    for skip in report["skipped"]:
        click.echo(f"skipped {skip['file']}: {skip['reason']}", err=True)
    if report["skipped"]:
        click.echo(f"{len(report['skipped'])} skipped; listed in {out / 'import_report.json'}", err=True)
