"""Write the canonical dataset layout (docs/CONTRACTS.md).

Every file is written atomically (temp file + rename), and a sample's meta JSON is written
last: a sample with a meta file is complete, so an interrupted run resumes by skipping those.
Dataset-wide files (COCO, dataset.json, the anomaly view) are rebuilt from the per-sample meta
files by `finalize`, which is why shards rendered apart merge into one dataset.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import yaml

from synth.annotations import Annotations, ClassInfo
from synth.config import SPLITS
from synth.errors import DataError, OutputError

FORMAT = "defectsynth-1"
# What a writer (or an importer) writes into a root; `overwrite` removes only its own files there.
LAYOUT = (
    "images",
    "masks",
    "instances",
    "labels",
    "labels_obb",
    "meta",
    "coco",
    "anomaly",
    "dataset.yaml",
    "import_report.json",
    "dataset.json",
)
SAMPLE_FILES = ("images", "masks", "instances", "labels", "labels_obb")  # one file each per sample
LOCKS = ".locks"
# Source keys recorded for provenance but not compared: a resume after an upgrade is allowed.
PROVENANCE_ONLY = ("versions", "scene")  # the scene path: its content is compared as config
MAX_SHOWN = 6  # differences named in a refusal


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file and rename. The temp name is chosen before the file exists, so an
    interrupt (Ctrl-C, a stopped worker) at any point leaves no temp file behind. A write the
    system refuses (a full disk, a read-only folder) leaves the old file as it was and is an
    `OutputError` naming the file (`write_error`)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as handle:  # mode 0666 minus the umask, as for any file
            handle.write(data)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):  # the folder may refuse this too; the first error counts
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(path, error) from None
        raise


def write_error(path: Path, error: OSError) -> OutputError:
    """The one message of a failed write; a full disk says how much space is left on it."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(
            f"{path}: no space left on the disk ({_free_space(path)} free there); nothing was "
            "half-written: free some space and run the same command again"
        )
    return OutputError(f"{path}: cannot write it ({error.strerror or error})")


def _free_space(path: Path) -> str:
    folder = next((p for p in path.parents if p.is_dir()), Path.cwd())
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "an unknown amount"
    for unit in ("bytes", "kB", "MB", "GB"):
        if free < 1000:
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1000
    return f"{free:.1f} TB"


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    """`data` as JSON; a NaN (an undefined metric) is written as null, since JSON has no NaN."""
    try:
        text = json.dumps(data, indent=1, default=_json_default, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: only then is the data walked
        text = json.dumps(_nan_as_null(data), indent=1, default=_json_default)
    atomic_write_text(path, text + "\n")


def _nan_as_null(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_as_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_as_null(v) for v in value]
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    return value


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
    """Writes samples of one dataset; safe to run again on the same root (resume).

    `dataset.json` records the classes and the `source` (what made the data: scene, config
    hash, seed, importer options ...). A writer whose classes or source disagree with the
    record refuses, so samples of two different runs never mix; `overwrite=True` removes the
    old dataset first. A writer holds a lock on its shard (see `WriterLock`) until `close`.
    """

    def __init__(
        self,
        root: str | Path,
        classes: list[ClassInfo] | tuple[ClassInfo, ...],
        source: dict[str, Any],
        overwrite: bool = False,
        shard: tuple[int, int] = (0, 1),
        wait: bool = False,
    ):
        self.root = Path(root)
        self.classes = tuple(classes)
        self.source = json.loads(json.dumps(source, default=_json_default))  # as stored and read back
        self._lock = WriterLock(self.root)
        while True:
            with self._lock.dataset():
                if self._lock.try_shard(shard):
                    try:
                        self._prepare(overwrite)
                    except BaseException:
                        self._lock.drop_shard()
                        raise
                    return
                if not wait:
                    raise self._lock.busy(shard)
            self._lock.wait_for_shard(shard)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release this writer's shard lock (also released by the OS if the process dies)."""
        with self._lock.dataset():
            self._lock.drop_shard()

    def _prepare(self, overwrite: bool) -> None:
        """Check the existing dataset against this writer's classes and source, or start one."""
        stored = self._stored_info()
        if stored is not None and overwrite:
            self._lock.check_no_other_writers()
            self._remove_dataset()
            stored = None
        if stored is None:
            self._write_dataset_json(counts={}, good={})
            return
        differences = _differences(stored, [c.to_dict() for c in self.classes], self.source)
        if differences:
            shown = "; ".join(differences[:MAX_SHOWN])
            more = f"; and {len(differences) - MAX_SHOWN} more" if len(differences) > MAX_SHOWN else ""
            raise DataError(
                f"{self.root}: this dataset was made with other parameters ({shown}{more}); "
                "pass --overwrite to replace it, or choose another --out"
            )

    def _stored_info(self) -> dict[str, Any] | None:
        """The recorded dataset.json, None for a folder without samples; refuses anything else."""
        path = self.root / "dataset.json"
        if not path.exists():
            leftovers = [name for name in LAYOUT if (self.root / name).exists()]
            if leftovers:
                raise DataError(
                    f"{self.root}: has {', '.join(leftovers)} but no dataset.json, so it is not a "
                    "defectsynth dataset; it is left alone: choose another --out"
                )
            return None
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: unreadable ({error}); the folder is left alone") from None
        if not isinstance(stored, dict) or stored.get("format") != FORMAT:
            raise DataError(f"{path}: not a {FORMAT} dataset; the folder is left alone")
        return stored

    def _remove_dataset(self) -> None:
        """Delete the files the dataset wrote: each sample's files (the samples its meta files
        name; a sample's meta last), the dataset-wide files and the anomaly view, then the folders
        left empty; dataset.json last, so a crash can be redone. Any other file is kept, also
        one a user put in images/train/."""
        for split in SPLITS:
            for meta in sorted((self.root / "meta" / split).glob("*.json")):
                files = [self.path(kind, split, meta.stem) for kind in SAMPLE_FILES]
                files += [self.burst_path(split, meta.stem, setup) for setup in _setups(meta)]
                for path in [*files, meta]:
                    path.unlink(missing_ok=True)
            (self.root / "coco" / f"{split}.json").unlink(missing_ok=True)
            (self.root / "images" / f"{split}.txt").unlink(missing_ok=True)
        if (self.root / "anomaly").is_dir():
            shutil.rmtree(self.root / "anomaly")  # links and masks that finalize rebuilds whole
        for name in LAYOUT:
            path = self.root / name
            if path.is_dir() and not path.is_symlink():
                _remove_empty_folders(path)
            elif name != "dataset.json":
                path.unlink(missing_ok=True)
        (self.root / "dataset.json").unlink(missing_ok=True)

    def finished(self, split: str) -> int:
        """How many samples of `split` are finished (counting files; nothing is parsed)."""
        folder = self.root / "meta" / split
        return sum(1 for _ in folder.glob("*.json")) if folder.exists() else 0

    def path(self, kind: str, split: str, image_id: str) -> Path:
        suffix = {"labels": ".txt", "labels_obb": ".txt", "meta": ".json"}.get(kind, ".png")
        return self.root / kind / split / f"{image_id}{suffix}"

    def burst_path(self, split: str, image_id: str, setup: str) -> Path:
        return self.root / "images" / split / f"{image_id}_{setup}.png"

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
        bursts: dict[str, np.ndarray] | None = None,
    ) -> None:
        """One sample; `bursts` (set-up name -> image, `image` being the first) are written as
        `images/<split>/<id>_<set-up>.png` beside it, all with these labels."""
        if split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, got {split!r}")
        bursts = bursts or {}
        for name, array in {"image": image, **bursts}.items():
            if array.shape[:2] != annotations.size:
                raise DataError(
                    f"{split}/{image_id}: {name} is {array.shape[:2]} but annotations are {annotations.size}"
                )
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        for name, array in bursts.items():
            atomic_write_png(self.burst_path(split, image_id, name), array)
        atomic_write_png(self.path("images", split, image_id), image)
        atomic_write_png(self.path("masks", split, image_id), annotations.semantic_mask())
        atomic_write_png(self.path("instances", split, image_id), annotations.instance_map)
        atomic_write_text(self.path("labels", split, image_id), annotations.to_yolo("segment"))
        atomic_write_text(self.path("labels_obb", split, image_id), yolo_obb_labels(annotations))
        meta = {
            "id": image_id,
            "split": split,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "mm_per_px": annotations.mm_per_px,
            "good": annotations.good,
            "instances": annotations.to_meta(),
            **({"bursts": list(bursts)} if bursts else {}),
            "spec": spec,
            **(extra or {}),
        }
        atomic_write_json(self.path("meta", split, image_id), meta)

    def finalize(self) -> dict[str, int]:
        """Rebuild COCO files, dataset.json/.yaml and the anomaly view from all samples."""
        with self._lock.dataset():  # one finalize at a time: shards may finish together
            return self._finalize()

    def _finalize(self) -> dict[str, int]:
        counts, good, entries = {}, {}, {}
        for split in SPLITS:
            metas = read_metas(self.root, split)
            counts[split] = len(metas)
            good[split] = sum(m["good"] for m in metas)
            atomic_write_json(self.root / "coco" / f"{split}.json", self._coco(split, metas))
            entries[split] = f"images/{split}"
            if any(m.get("bursts") for m in metas):  # the folder also holds the set-ups' images
                # relative to the list's folder (Ultralytics' `./` rule): the dataset may move
                lines = "".join(f"./{split}/{m['id']}.png\n" for m in metas)
                atomic_write_text(self.root / "images" / f"{split}.txt", lines)
                entries[split] = f"images/{split}.txt"
        self._write_dataset_json(counts, good)
        names = {c.id - 1: c.name for c in self.classes}
        data_yaml = {**entries, "names": names}  # no `path`: Ultralytics takes the file's folder
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


def oriented_box(mask: np.ndarray) -> tuple[tuple[float, float], tuple[float, float], float]:
    """The minimum-area rotated rectangle of a mask's pixels: centre (x, y), (length, width)
    with length >= width, and the direction of the length in degrees in [0, 180).

    `cv2.minAreaRect` of the pixel centres, grown by half a pixel on every side: an axis-aligned
    block of w x h pixels measures exactly w x h, and a rasterised rotated rectangle comes back
    within about a pixel (enclosing the whole pixel squares overshoots by up to √2 per side).
    """
    ys, xs = np.nonzero(mask)
    if not len(xs):
        raise ValueError("an empty mask has no oriented box")
    centres = np.stack([xs, ys], axis=1).astype(np.float32) + 0.5
    (cx, cy), (w, h), angle = cv2.minAreaRect(centres)
    if w < h:  # minAreaRect's angle is that of the side it calls w
        w, h, angle = h, w, angle + 90.0
    return (float(cx), float(cy)), (float(w) + 1.0, float(h) + 1.0), float(angle % 180.0)


def yolo_obb_labels(annotations: Annotations) -> str:
    """Ultralytics OBB label text: `class x1 y1 x2 y2 x3 y3 x4 y4`, the corners of each
    instance's `oriented_box` normalised by the image size and clipped to [0, 1] (Ultralytics
    refuses coordinates outside the image); YOLO class = class id − 1, as in `labels/`."""
    height, width = annotations.size
    lines = []
    for inst in annotations.instances:
        corners = cv2.boxPoints(oriented_box(annotations.instance_map == inst.instance_id))
        values = np.clip(corners / [width, height], 0.0, 1.0).ravel()
        lines.append(" ".join([str(inst.class_id - 1), *(f"{v:.6f}" for v in values)]))
    return "\n".join(lines) + ("\n" if lines else "")


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _setups(meta: Path) -> list[str]:
    """The light set-ups a sample's meta file lists ([] when it lists none or is damaged)."""
    try:
        setups = json.loads(meta.read_text()).get("bursts", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [s for s in setups if isinstance(s, str)] if isinstance(setups, list) else []


def _remove_empty_folders(folder: Path) -> None:
    """Remove `folder` and the folders below it that hold no file."""
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True) + [folder]:
        with contextlib.suppress(OSError):  # not empty: it holds a file that is kept
            path.rmdir()


def read_metas(root: Path, split: str) -> list[dict[str, Any]]:
    """The meta files of a split in id order; a damaged one is a `DataError` naming it."""
    folder = Path(root) / "meta" / split
    metas = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            metas.append(json.loads(path.read_text()))
        except ValueError as error:
            raise DataError(f"{path}: damaged meta file ({error}); delete it to redo the sample") from None
    return metas


_UNSET = object()


def _differences(stored: dict[str, Any], classes: list[dict[str, Any]], source: dict[str, Any]) -> list[str]:
    """How a recorded dataset.json differs from a writer's classes and source, one line each."""
    found = []
    stored_classes = [ClassInfo(**c).to_dict() for c in stored.get("classes", [])]
    if stored_classes != classes:
        found.append(f"classes {[c['name'] for c in stored_classes]} -> {[c['name'] for c in classes]}")
    old, new = (
        {k: v for k, v in s.items() if k not in PROVENANCE_ONLY} for s in (stored.get("source") or {}, source)
    )
    return found + _diff(old, new, "")


def _diff(old: dict[Any, Any], new: dict[Any, Any], prefix: str) -> list[str]:
    """Leaf-by-leaf differences of two JSON mappings as `key old -> new` (nested keys dotted,
    list items numbered: `config.defects.0.name 'scratch' -> 'gouge'`)."""
    lines = []
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key, _UNSET), new.get(key, _UNSET)
        nested = _nested(a), _nested(b)
        if nested[0] is not None and nested[1] is not None and type(a) is type(b):
            lines += _diff(nested[0], nested[1], f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key} {_show(a)} -> {_show(b)}")
    return lines


def _nested(value: object) -> dict[Any, Any] | None:
    """A mapping to compare key by key: a dict, or a list of dicts (config.defects) by index."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return dict(enumerate(value))
    return None


def _show(value: object) -> str:
    """A value for a one-line message: strings (paths, hashes) whole, long lists and dicts cut."""
    text = "unset" if value is _UNSET else repr(value)
    return text if isinstance(value, str) or len(text) <= 60 else text[:57] + "..."


class WriterLock:
    """flock()s on files in `<root>/.locks`; the OS releases them when a process dies.

    `dataset()` is held briefly around a writer's set-up, finalize and close. A shard lock
    (`shard-<i>-of-<n>.lock`, which says "pid P on H") is held for a writer's life: two runs of
    one shard exclude each other (the second refuses, or with `wait` waits), the shards of one
    run (`--workers`, `--shard i/N`) do not, and overwriting refuses while any other shard is
    held. (A whole run, shard 0/1, beside a `--shard i/N` run of the same parameters is let be:
    both write the same bytes, atomically.) Shard lock files are created and removed only under
    `dataset()`, so no one takes a lock on a file that is being unlinked (a waiter may wait on
    one, then tries again under `dataset()`).
    """

    def __init__(self, root: Path):
        self.root = root
        self.folder = root / LOCKS
        # A file object, not a bare fd: a writer dropped without close() (and so this lock) is
        # garbage collected, which closes the file and so releases the lock.
        self._shard: tuple[Path, BinaryIO] | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._unwritable(error) from None

    @contextmanager
    def dataset(self) -> Iterator[None]:
        fd = self._open(self.folder / "dataset.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def try_shard(self, shard: tuple[int, int]) -> bool:
        """Lock shard i of n, or say that another run holds it. Call under `dataset()`."""
        path = self._shard_path(shard)
        fd = self._open(path)
        if not _try_lock(fd):
            os.close(fd)
            return False
        handle = os.fdopen(fd, "r+b", buffering=0)
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self._shard = (path, handle)
        return True

    def busy(self, shard: tuple[int, int]) -> DataError:
        """The refusal for a shard that another run holds."""
        return DataError(
            f"{self.root} is being written by another run ({_holder(self._shard_path(shard))}, "
            f"shard {shard[0]}/{shard[1]}); wait for it to finish or stop it"
        )

    def wait_for_shard(self, shard: tuple[int, int]) -> None:
        """Block until the run holding shard i of n lets it go. Call outside `dataset()`, which
        that run needs to finish; the caller then tries again under `dataset()`."""
        path = self._shard_path(shard)
        holder = f"{_holder(path)}, shard {shard[0]}/{shard[1]}"
        print(f"{self.root} is being written by another run ({holder}); waiting for it", file=sys.stderr)
        try:
            fd = os.open(path, os.O_RDWR)  # no O_CREAT: lock files are made only under dataset()
        except FileNotFoundError:
            return  # let go meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)

    def _shard_path(self, shard: tuple[int, int]) -> Path:
        return self.folder / f"shard-{shard[0]}-of-{shard[1]}.lock"

    def drop_shard(self) -> None:
        """Unlock and remove this writer's shard lock file. Call under `dataset()`."""
        if self._shard is not None:
            path, handle = self._shard
            path.unlink(missing_ok=True)
            handle.close()
            self._shard = None

    def check_no_other_writers(self) -> None:
        """Refuse while another writer holds a shard of this root. Call under `dataset()`."""
        own = self._shard[0] if self._shard else None
        for path in sorted(self.folder.glob("shard-*.lock")):
            if path == own:
                continue
            fd = self._open(path)
            try:
                if not _try_lock(fd):
                    raise DataError(
                        f"{self.root} is being written by another run ({_holder(path)}); "
                        "it cannot be overwritten while that runs"
                    )
            finally:
                os.close(fd)

    def _open(self, path: Path) -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise self._unwritable(error) from None

    def _unwritable(self, error: OSError) -> DataError:
        return DataError(f"{self.root}: cannot write the dataset there ({error.strerror})")


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    try:
        return path.read_text() or "a process that has not written its pid yet"
    except OSError:
        return "a process that has since finished"
