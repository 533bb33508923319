"""Training and inference speed and peak memory of the default segmenter on CPU.

    nice .venv/bin/python benchmarks/segment_speed.py [--sizes 128,256] [--steps 12]

Each size runs in a fresh process (so its peak RSS is its own): the shipped U-Net on the offline
EfficientNet-Lite0 encoder, the shipped batch of 8 crops, BCE + Dice and AdamW steps on random
crops (the network's cost only: crop sampling and augmentation are left out), then inference
on batches of 16 tiles. The first two steps warm up and are not timed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

WARMUP = 2


def measure(size: int, steps: int) -> dict:
    import torch

    from train.segment.config import SegmentConfig
    from train.segment.model import Segmenter
    from train.segment.training import segment_loss

    config = SegmentConfig(image_size=size)
    model = Segmenter.new(config, ["defect"])
    optimiser = torch.optim.AdamW(model.network.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(config.batch_size, 3, size, size, generator=g)
    target = (torch.rand(config.batch_size, 1, size, size, generator=g) < 0.02).float()
    model.network.train()
    for step in range(WARMUP + steps):
        if step == WARMUP:
            start = time.perf_counter()
        optimiser.zero_grad()
        segment_loss(model.network(x), target, config).backward()
        optimiser.step()
    train_s = time.perf_counter() - start
    model.network.eval()
    tiles = torch.rand(16, 3, size, size, generator=g)
    with torch.no_grad():
        model.network(tiles)
        start = time.perf_counter()
        for _ in range(steps // 2 or 1):
            model.network(tiles)
        infer_s = time.perf_counter() - start
    return {
        "size": size,
        "batch": config.batch_size,
        "threads": torch.get_num_threads(),
        "train_img_s": steps * config.batch_size / train_s,
        "infer_img_s": (steps // 2 or 1) * 16 / infer_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps)))
        return
    print("| crop | batch | threads | train images/s | inference images/s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        child = [sys.executable, __file__, "--child", str(size), "--steps", str(args.steps)]
        r = json.loads(
            subprocess.run(child, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
        )
        print(
            f"| {r['size']}² | {r['batch']} | {r['threads']} | {r['train_img_s']:.1f} | "
            f"{r['infer_img_s']:.1f} | {r['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
