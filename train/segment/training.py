"""Training a segmenter: BCE (or focal) + Dice, AdamW with a cosine schedule, early stop on
the validation loss, a checkpoint after every epoch and an exact resume after a kill.

An epoch's randomness (crops, augmentations, torch's generator) is seeded by (seed, epoch) and
the checkpoint holds the optimizer and schedule, so a run resumed after an interrupted epoch
repeats that epoch exactly and ends with the weights of an uninterrupted run (on CPU).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from evaluate import metrics as m
from synth.dataset import Dataset, require_classes
from synth.errors import ConfigError, DataError
from synth.tiles import tile_grid
from train.checkpoints import weights_start
from train.segment.config import SegmentConfig
from train.segment.data import Pool, TrainSource, defect_class_names, epoch_batches, load_pool, pad_to
from train.segment.model import WEIGHTS, Segmenter

VAL_THRESHOLD = 0.5  # progress-bar F1 only; evaluation picks its own threshold


def segment_loss(logits: torch.Tensor, target: torch.Tensor, config: SegmentConfig) -> torch.Tensor:
    """BCE + Dice (or focal + Dice): the pixel term learns the rare defect pixels at all, the
    Dice term keeps thin defects from drowning in background."""
    import segmentation_models_pytorch as smp

    mode = "binary" if config.classes == "binary" else "multilabel"
    dice = smp.losses.DiceLoss(mode, from_logits=True)(logits, target)
    if config.loss == "focal_dice":
        return smp.losses.FocalLoss(mode)(logits, target) + dice
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target) + dice


def _targets(batch: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().to(device)


def val_tiles(pool: Pool, config: SegmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """The validation images cut into inference tiles (whole images, not random crops): every
    tile with a defect, then a seeded draw of the others, `val_tiles` in all."""
    size = config.image_size
    images, targets = [], []
    for image, target in zip(pool.images, pool.targets, strict=True):
        image, target = pad_to(image, size), pad_to(target, size)
        for tile in tile_grid(image.shape[1], image.shape[0], size, 0.0):
            images.append(tile.crop(image).astype(np.float32) / 255.0)
            targets.append(tile.crop(target))
    order = np.random.default_rng(config.seed).permutation(len(images))
    order = sorted(order, key=lambda i: not targets[i].any())[: config.val_tiles]
    return np.stack([images[i] for i in order]), np.stack([targets[i] for i in order])


@torch.no_grad()
def validate(model: Segmenter, tiles: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Mean loss and pixel F1 at probability 0.5 over the validation tiles."""
    model.network.eval()
    images, targets = tiles
    losses, counts = [], []
    step = 2 * model.config.batch_size
    for start in range(0, len(images), step):
        logits = model.network(model.to_tensor(images[start : start + step]))
        target = _targets(targets[start : start + step], model.config.device)
        losses.append(float(segment_loss(logits, target, model.config)) * len(logits))
        pred = (torch.sigmoid(logits) >= VAL_THRESHOLD).cpu().numpy()
        counts.append(m.confusion(pred, target.cpu().numpy()))
    tp, fp, fn = (sum(getattr(c, f) for c in counts) for f in ("tp", "fp", "fn"))
    return {"val_loss": sum(losses) / len(images), "val_f1": m.Counts(tp, fp, fn, 0).f1}


def train(
    model: Segmenter,
    sources: Sequence[TrainSource],
    val: TrainSource | None,
    out: Path,
    start_from: str,
) -> Segmenter:
    """Train `model` on one source (or a synthetic and a real one, mixed by `real_share`),
    checkpointing to `out` after every epoch; an unfinished `out` of the same run resumes, a
    finished one is returned as it is."""
    config = model.config
    per_class = config.classes == "per_class"
    recipe = {
        "config": config.to_dict(),
        "sources": [s.recipe() for s in sources],
        "val": val.recipe() if val else None,
        "start": start_from,
    }
    resume = _resume_state(out, recipe, config.device)
    if resume is not None and resume.get("finished"):
        return Segmenter.from_checkpoint(resume, out, config.device)
    pools = [load_pool(s, model.class_names, per_class) for s in sources]
    if not any(t.any() for p in pools for t in p.targets):
        raise DataError(f"{sources[0].root}: no defect pixels in the training images: nothing to learn")
    tiles = None
    if val is not None and Dataset(val.root).splits.get(val.split):
        tiles = val_tiles(load_pool(val, model.class_names, per_class), config)
    optimizer = torch.optim.AdamW(model.network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    state = {"epoch": 0, "best_loss": float("inf"), "best_state": None, "bad_epochs": 0}
    model.history, model.trained_on = [], recipe["sources"]
    if resume is not None:
        model.network.load_state_dict(resume["state_dict"])
        optimizer.load_state_dict(resume["resume"]["optimizer"])
        schedule.load_state_dict(resume["resume"]["schedule"])
        state = {k: resume["resume"][k] for k in state}
        model.history = list(resume["history"])
    bar = tqdm(range(state["epoch"], config.epochs), desc="segment epochs", unit="epoch")
    for epoch in bar:
        torch.manual_seed(config.seed * 100_003 + epoch)
        model.network.train()
        losses = []
        total = -(-config.crops_per_epoch // config.batch_size)
        batches = epoch_batches(pools, config, epoch)
        steps = tqdm(batches, desc=f"epoch {epoch}", total=total, leave=False, unit="batch")
        for images, targets in steps:
            logits = model.network(model.to_tensor(images))
            loss = segment_loss(logits, _targets(targets, config.device), config)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            steps.set_postfix(loss=f"{losses[-1]:.3f}")
        schedule.step()
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "lr": schedule.get_last_lr()[0]}
        if tiles is not None:
            record.update(validate(model, tiles))
        model.history.append(record)
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k in ("loss", "val_loss", "val_f1")})
        watched = record.get("val_loss", record["loss"])
        if watched < state["best_loss"]:
            best = copy.deepcopy(model.network.state_dict())
            state.update(best_loss=watched, best_state=best, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        if state["bad_epochs"] >= config.patience or state["epoch"] == config.epochs:
            break
        resume_state = {**state, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
        model.save(out, resume_state, recipe)
    bar.close()
    if state["best_state"] is not None:
        model.network.load_state_dict(state["best_state"])
    model.save(out, recipe=recipe)
    return model


def _resume_state(out: Path, recipe: dict, device: str) -> dict | None:
    """The checkpoint at `out` when it is from this very run; another run's file is refused."""
    if not Path(out).exists():
        return None
    data = WEIGHTS.read(out, unfinished=True)
    if data.get("recipe") != recipe:
        raise ConfigError(
            f"{out} holds another training run (other data or settings); remove it or choose another --out"
        )
    return data


def pretrain(
    data: Path | Sequence[TrainSource],
    out: Path,
    config: SegmentConfig,
    val: TrainSource | None = None,
) -> Segmenter:
    """Train a new segmenter on a canonical dataset's train split (validated on its val split),
    or on given sources: one, or a synthetic and a real one to mix."""
    sources = [TrainSource(Path(data))] if isinstance(data, str | Path) else list(data)
    if val is None and isinstance(data, str | Path):
        val = TrainSource(Path(data), "val")
    torch.manual_seed(config.seed)  # the decoder's random init
    model = Segmenter.new(config, defect_class_names(sources[0].root))
    return train(model, sources, val, out, f"new:{config.weights}")


def finetune(
    weights: Path,
    data: Path | Sequence[TrainSource],
    out: Path,
    val: TrainSource | None = None,
    device: str = "cpu",
    **overrides,
) -> Segmenter:
    """Continue a trained segmenter on new data (a few real images); training settings such as
    `epochs` or `lr` may change, the network (architecture, encoder, classes) may not."""
    fixed = sorted(set(overrides) & {"architecture", "encoder", "classes", "weights"})
    if fixed:
        raise ConfigError(f"fine-tuning keeps the network of {weights}; cannot change {fixed}")
    model = Segmenter.load(weights, device)
    model.config = model.config.replace(device=device, **overrides)
    sources = [TrainSource(Path(data))] if isinstance(data, str | Path) else list(data)
    if val is None and isinstance(data, str | Path):
        val = TrainSource(Path(data), "val")
    if model.config.classes == "per_class":
        require_classes((weights, model.class_names), (sources[0].root, defect_class_names(sources[0].root)))
    return train(model, sources, val, out, weights_start(weights))
