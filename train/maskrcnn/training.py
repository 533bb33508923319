"""Training a Mask R-CNN on a canonical dataset's tiles: AdamW, a short linear warm-up then a
cosine decay, an optional frozen-backbone start, the weights with the lowest validation loss.

Every epoch's order and augmentations are seeded by (seed, epoch), and torch's generator too
(the RPN and box samplers draw from it), so a CPU run repeats exactly. The weights file is
written after every epoch, so a long run leaves usable weights when stopped.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from synth.dataset import Dataset, require_classes
from synth.errors import DataError
from train.checkpoints import weights_start
from train.maskrcnn.config import MaskRCNNConfig
from train.maskrcnn.data import epoch_batches, plain_batches
from train.maskrcnn.model import MaskRCNNModel
from train.tiling import Source, TrainTile, canonical_sources, split_tiles


def _loss(model: MaskRCNNModel, batch: list) -> torch.Tensor:
    images = [image.to(model.device) for image, _ in batch]
    targets = [{k: v.to(model.device) for k, v in target.items()} for _, target in batch]
    return sum(model.network(images, targets).values())


@torch.no_grad()
def validation_loss(model: MaskRCNNModel, tiles: list[TrainTile]) -> float:
    """Mean training loss over the validation tiles (the losses exist in train mode only; batch
    norm is frozen, so that mode changes nothing else)."""
    torch.manual_seed(model.config.seed)  # the samplers: the same draw every epoch
    model.network.train()
    losses = [float(_loss(model, b)) * len(b) for b in plain_batches(tiles, model.classes, 2)]
    return sum(losses) / len(tiles)


def _schedule(config: MaskRCNNConfig, steps_per_epoch: int):
    """Learning-rate factor per step: linear warm-up, then cosine down to 5 %."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(config.warmup_steps, total // 4)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _labelled(tiles: list[TrainTile], root: Path, split: str) -> list[TrainTile]:
    if not any(t.annotations.instances for t in tiles):
        raise DataError(
            f"{root}: no labelled instances in split {split!r}: Mask R-CNN learns from instance masks "
            "(a dataset of good images only trains PatchCore instead)"
        )
    return tiles


def train(model: MaskRCNNModel, data: Path, out: Path, start_from: str) -> MaskRCNNModel:
    """Train `model` on the train split of `data` (tiled by its config), keeping the weights with
    the lowest loss on the val split (the last ones when there is none, or with `keep: last`),
    saved to `out`."""
    dataset = Dataset(data)
    sources = [canonical_sources(dataset, split) for split in ("train", "val")]
    return train_on(model, *sources, out, start_from, Path(data).resolve())


def train_on(
    model: MaskRCNNModel, train: list[Source], val: list[Source], out: Path, start_from: str, data: Path
) -> MaskRCNNModel:
    """`train` on images given as sources, labelled in the model's classes (the domain-gap
    cells mix the images of several datasets); `data` is recorded as where they came from."""
    config = model.config
    train_tiles = _labelled(split_tiles(train, config.tiling, config.seed), data, "train")
    val_tiles = split_tiles(val, config.tiling, config.seed)
    steps = math.ceil(len(train_tiles) / config.batch_size)
    parameters = [p for p in model.network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, steps))
    trainable = [p for p in model.body.parameters() if p.requires_grad]
    model.trained_on = [
        *model.trained_on,
        {
            "data": str(data),
            "start": start_from,
            "tiles": len(train_tiles),
            "val_tiles": len(val_tiles),
        },
    ]
    # the weights of the lowest val loss so far; None keeps the last epoch's (no val split, or
    # `keep: last`), which are the network's own at the end, so nothing is copied for them
    best: tuple[float, dict[str, Any] | None] = (float("inf"), None)
    watch_val = bool(val_tiles) and config.keep == "best_val"
    for epoch in tqdm(range(config.epochs), desc="maskrcnn epochs", unit="epoch"):
        for parameter in trainable:
            parameter.requires_grad = epoch >= config.freeze_backbone_epochs
        torch.manual_seed(config.seed * 100_003 + epoch)
        model.network.train()
        started, losses = time.perf_counter(), []
        for batch in tqdm(epoch_batches(train_tiles, model.classes, config, epoch), total=steps, leave=False):
            loss = _loss(model, batch)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 10.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        seconds = time.perf_counter() - started
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "lr": schedule.get_last_lr()[0],
            "seconds": round(seconds, 2),
            "tiles_per_second": round(len(train_tiles) / seconds, 3),
        }
        if val_tiles:
            record["val_loss"] = validation_loss(model, val_tiles)
        model.history.append(record)
        if watch_val and record["val_loss"] < best[0]:
            best = (record["val_loss"], copy.deepcopy(model.network.state_dict()))
        model.save(out, finished=False)  # a checkpoint: a killed run leaves no final-looking file
    if best[1] is not None:
        model.network.load_state_dict(best[1])
    model.save(out)
    return model


def pretrain(data: Path, out: Path, config: MaskRCNNConfig, device: str = "cpu") -> MaskRCNNModel:
    """A new Mask R-CNN (ImageNet backbone, the rest seeded) trained on a canonical dataset."""
    model = MaskRCNNModel.new(config, list(Dataset(data).classes), device)
    return train(model, data, out, f"new:{config.backbone}:imagenet")


def finetune(weights: Path, data: Path, out: Path, device: str = "cpu", **overrides: Any) -> MaskRCNNModel:
    """Continue trained weights on another dataset (a few real images) with the same classes;
    training settings (epochs, lr, tiling, ...) may change, the network may not."""
    model = MaskRCNNModel.load(weights, device, **overrides)
    data_classes = [c.name for c in Dataset(data).classes]
    require_classes((weights, [c.name for c in model.classes]), (data, data_classes))
    return train(model, data, out, weights_start(weights))
