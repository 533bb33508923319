"""Sequential PatchCore: pretrain, fine-tune and meld coresets; score images; coreset files."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torchvision.transforms.v2.functional import gaussian_blur
from tqdm.auto import tqdm

from synth.dataset import read_view
from synth.writers import atomic_write_bytes
from train.patchcore.config import IncompatibleCoresetError, PatchCoreConfig, PatchCoreError
from train.patchcore.coreset import SequentialCoreset, nearest_distances
from train.patchcore.data import (
    DataSource,
    augment,
    dataset_hash,
    list_images,
    to_tensor,
)
from train.patchcore.features import PatchFeatures, to_patches

FORMAT = "defectsynth-patchcore-1"
_METADATA_KEY = "defectsynth.patchcore"

_feature_cache: dict[tuple, PatchFeatures] = {}


def patch_features(config: PatchCoreConfig) -> PatchFeatures:
    """The frozen feature model of a set-up, built once per process."""
    key = (config.weights, *config.feature_setup().items())
    if key not in _feature_cache:
        _feature_cache[key] = PatchFeatures(config).eval()
    return _feature_cache[key].to(config.device)


@dataclass
class Coreset:
    """A trained coreset with everything needed to use it: feature set-up, history, threshold."""

    points: torch.Tensor
    config: PatchCoreConfig
    weights_id: str
    epochs: int = 0
    datasets: list[dict] = field(default_factory=list)
    threshold: float | None = None

    @property
    def size(self) -> int:
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    def metadata(self) -> dict:
        return {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "weights_id": self.weights_id,
            "feature_dim": self.dim,
            "size": self.size,
            "epochs": self.epochs,
            "datasets": self.datasets,
            "threshold": self.threshold,
        }

    def save(self, path: str | Path) -> Path:
        """Write the file atomically: an interrupted save leaves any earlier file intact."""
        path = Path(path)
        if path.is_dir():
            raise PatchCoreError(f"{path} is a directory; expected a coreset file name")
        metadata = {_METADATA_KEY: json.dumps(self.metadata())}
        atomic_write_bytes(path, save({"points": self.points.detach().cpu().contiguous()}, metadata=metadata))
        return path

    @classmethod
    def load(cls, path: str | Path, expect: PatchCoreConfig | None = None, device: str = "cpu") -> Coreset:
        """Read a coreset file to be used on `device`; with `expect`, refuse one built on
        other features."""
        path = Path(path)
        if not path.is_file():
            raise PatchCoreError(f"coreset file not found: {path}")
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                header = handle.metadata() or {}
            points = load_file(path)["points"]
            meta = json.loads(header[_METADATA_KEY])
        except (SafetensorError, KeyError, ValueError, OSError) as error:
            raise PatchCoreError(f"{path} is not a Sequential PatchCore coreset: {error}") from error
        if meta.get("format") != FORMAT:
            raise PatchCoreError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
        if tuple(points.shape) != (meta["size"], meta["feature_dim"]):
            raise PatchCoreError(
                f"{path} is damaged: points {tuple(points.shape)} but metadata says "
                f"{meta['size']} x {meta['feature_dim']}"
            )
        coreset = cls(
            points=points,
            config=PatchCoreConfig.from_dict({**meta["config"], "device": device}),
            weights_id=meta["weights_id"],
            epochs=meta["epochs"],
            datasets=meta["datasets"],
            threshold=meta["threshold"],
        )
        if expect is not None:
            coreset.check_setup(expect, patch_features(expect).weights_id, name=str(path))
        return coreset

    def check_setup(self, config: PatchCoreConfig, weights_id: str, name: str = "coreset") -> None:
        """Raise IncompatibleCoresetError naming every field where the set-ups differ."""
        ours = {**self.config.feature_setup(), "weights_id": self.weights_id}
        theirs = {**config.feature_setup(), "weights_id": weights_id}
        diff = [f"{k}: {ours[k]!r} in {name} vs {theirs[k]!r}" for k in ours if ours[k] != theirs[k]]
        if diff:
            raise IncompatibleCoresetError(f"{name} was built with other features; " + "; ".join(diff))

    def features(self) -> PatchFeatures:
        model = patch_features(self.config)
        self.check_setup(self.config, model.weights_id, name="this coreset")
        if model.dim != self.dim:
            raise IncompatibleCoresetError(
                f"backbone gives {model.dim}-d features, coreset holds {self.dim}-d points"
            )
        return model

    def anomaly_maps(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, *image_size) anomaly maps."""
        features = self.features()(images.to(self.config.device))
        return score_features(features, self.points.to(self.config.device), self.config).cpu()

    def predict(self, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """Anomaly maps (float32, each at its image's own size) and image scores (map maxima)."""
        maps: list[np.ndarray] = []
        for start in range(0, len(images), self.config.batch_size):
            batch = images[start : start + self.config.batch_size]
            x = torch.stack([to_tensor(image, self.config.image_size) for image in batch])
            for image, m in zip(batch, self.anomaly_maps(x), strict=True):
                full = F.interpolate(m[None, None], size=image.shape[:2], mode="bilinear")
                maps.append(full[0, 0].numpy().astype(np.float32))
        scores = np.array([m.max() for m in maps], dtype=np.float32)
        return maps, scores

    def calibrate(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> float:
        """Set the threshold (anomalous: score >= threshold): max pixel F1 on labelled images,
        else just above the highest score of these good images (evaluate.metrics' rule)."""
        from evaluate.metrics import above_all, best_f1_threshold

        if not images:
            raise PatchCoreError("calibration needs at least one image")
        maps, scores = self.predict(images)
        if masks is not None and any(np.any(m > 0) for m in masks):
            truth = np.concatenate([(np.asarray(k) > 0).ravel() for k in masks])
            self.threshold, _ = best_f1_threshold(truth, np.concatenate([m.ravel() for m in maps]))
        else:
            self.threshold = above_all(scores)
        return self.threshold


def score_features(features: torch.Tensor, points: torch.Tensor, config: PatchCoreConfig) -> torch.Tensor:
    """Patch features (B, C, h, w) → (B, *image_size): nearest-point distances, upsampled and
    blurred as in anomalib's PatchCore."""
    b, _, h, w = features.shape
    scores = nearest_distances(to_patches(features), points, config.chunk_size)
    maps = F.interpolate(scores.view(b, 1, h, w), size=config.image_size, mode="bilinear")
    if config.sigma > 0:
        kernel = 2 * int(4 * config.sigma + 0.5) + 1  # as anomalib's GaussianBlur2d
        maps = gaussian_blur(maps, kernel_size=kernel, sigma=config.sigma)
    return maps[:, 0]


def _views(paths: Sequence[Path], order: Sequence[int], config: PatchCoreConfig) -> Iterator[torch.Tensor]:
    """Batches of training views: each image as is, then its fixed augmented variants."""
    for start in range(0, len(order), config.batch_size):
        views = []
        for index in order[start : start + config.batch_size]:
            x = to_tensor(read_view(paths[index], config.burst), config.image_size)
            views.append(x)
            for view in range(1, config.augmentations + 1):
                seed = int(np.random.SeedSequence([config.seed, index, view]).generate_state(1)[0])
                views.append(augment(x, seed))
        yield torch.stack(views)


def _run_epochs(
    state: SequentialCoreset,
    model: PatchFeatures,
    paths: Sequence[Path],
    config: PatchCoreConfig,
    epochs: int,
    desc: str,
) -> int:
    """Feed the images' patches through the replacement rule; returns the epochs run."""
    for epoch in range(epochs):
        order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(config.seed + epoch))
        changes = 0
        with tqdm(total=len(paths), unit="img", desc=f"{desc} epoch {epoch + 1}/{epochs}") as bar:
            for batch in _views(paths, order.tolist(), config):
                patches = to_patches(model(batch.to(config.device)))
                changes += sum(state.add(chunk) for chunk in patches.split(config.chunk_size))
                bar.update(len(batch) // (1 + config.augmentations))
                bar.set_postfix(changes=changes, d_m=f"{state.min_distance:.3g}")
        if changes == 0:
            return epoch + 1
    return epochs


def _split_holdout(paths: list[Path], config: PatchCoreConfig) -> tuple[list[Path], list[Path]]:
    """Keep a seeded fraction of the good images apart to set the threshold on."""
    n = max(1, round(len(paths) * config.holdout)) if config.holdout and len(paths) > 1 else 0
    if n == 0:
        return paths, []
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(config.seed))
    held = set(order[:n].tolist())
    return [p for i, p in enumerate(paths) if i not in held], [paths[i] for i in sorted(held)]


def _train(
    state: SequentialCoreset,
    data: DataSource,
    config: PatchCoreConfig,
    role: str,
    pattern: str | None,
    previous: Coreset | None = None,
) -> Coreset:
    paths = list_images(data, pattern)
    train_paths, held = _split_holdout(paths, config)
    model = patch_features(config)
    epochs = _run_epochs(state, model, train_paths, config, config.epochs, role)
    record = {
        "role": role,
        "source": str(data) if isinstance(data, str | Path) else "list",
        "images": len(train_paths),
        "sha256": dataset_hash(train_paths),
        "epochs": epochs,
    }
    coreset = Coreset(
        points=state.stored().cpu().clone(),
        config=config,
        weights_id=model.weights_id,
        epochs=epochs + (previous.epochs if previous else 0),
        datasets=[*(previous.datasets if previous else []), record],
        threshold=previous.threshold if previous else None,
    )
    if held:
        coreset.calibrate([read_view(p, config.burst) for p in held])
    return coreset


def pretrain(data: DataSource, config: PatchCoreConfig | None = None, pattern: str | None = None) -> Coreset:
    """Build a coreset from good images (a canonical dataset root, a folder or a file list)."""
    config = config or PatchCoreConfig()
    model = patch_features(config)
    state = SequentialCoreset(config.coreset_size, model.dim, device=config.device)
    return _train(state, data, config, "pretrain", pattern)


def finetune(
    coreset: Coreset,
    data: DataSource,
    epochs: int | None = None,
    pattern: str | None = None,
    **overrides,
) -> Coreset:
    """Continue the replacement rule from a trained coreset on new good images; `overrides`
    (e.g. `coreset_size`, `device`) replace the coreset's own settings."""
    config = coreset.config.replace(**overrides, **({"epochs": epochs} if epochs else {}))
    coreset.check_setup(config, patch_features(config).weights_id, name="the coreset")
    state = SequentialCoreset.from_points(coreset.points, config.coreset_size, device=config.device)
    return _train(state, data, config, "finetune", pattern, previous=coreset)


def meld(coresets: Sequence[Coreset], size: int | None = None, max_epochs: int = 20) -> Coreset:
    """Feed the points of several coresets through the replacement rule into one of `size`.

    No feature extraction: melding is fast. Epochs over the pooled points run until one
    changes nothing. The threshold is reset; calibrate the result before thresholding.
    """
    if not coresets:
        raise PatchCoreError("meld needs at least one coreset")
    first = coresets[0]
    for i, other in enumerate(coresets[1:], start=2):
        first.check_setup(other.config, other.weights_id, name=f"coreset 1 (vs coreset {i})")
    size = size or max(c.size for c in coresets)
    points = torch.cat([c.points for c in coresets])
    state = SequentialCoreset(size, first.dim, device=first.config.device)
    for _ in range(max_epochs):
        if sum(state.add(chunk) for chunk in points.split(first.config.chunk_size)) == 0:
            break
    return Coreset(
        points=state.stored().cpu().clone(),
        config=first.config.replace(coreset_size=size),
        weights_id=first.weights_id,
        epochs=max(c.epochs for c in coresets),
        datasets=[record for c in coresets for record in c.datasets],
        threshold=None,
    )
