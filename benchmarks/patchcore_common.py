"""Shared by the PatchCore benchmarks: anomalib's Patchcore on our exact features, child
processes with peak-RSS measurement, and the metrics."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from evaluate.metrics import best_f1_threshold
from train.patchcore import PatchCoreConfig
from train.patchcore.features import build_backbone


def emit(**figure) -> None:
    """One machine-readable line per figure."""
    print(json.dumps(figure), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args: Sequence[str], timeout: float, env: dict | None = None) -> dict:
    """Run a benchmark child; its last JSON line, plus the peak RSS the parent saw (VmHWM),
    so that a child killed by the OS or the timeout still gets a memory figure, and the highest
    RSS in each quarter of the run, which shows whether memory grows while it trains."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    peak = [0.0]
    samples: list[tuple[float, float]] = []

    def poll() -> None:
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    fields = dict(line.split(":", 1) for line in status)
            except (OSError, ValueError):
                return
            if "VmHWM" in fields and "VmRSS" in fields:
                peak[0] = max(peak[0], int(fields["VmHWM"].split()[0]) / 1024)
                samples.append((time.perf_counter() - start, int(fields["VmRSS"].split()[0]) / 1024))
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        status = f"timeout after {timeout:.0f} s"
    watcher.join()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result = lines[-1] if lines and status == "ok" else {}
    result.setdefault("peak_rss_mb", round(peak[0]))
    wall = time.perf_counter() - start
    quarters = [[rss for t, rss in samples if q * wall / 4 <= t < (q + 1) * wall / 4] for q in range(4)]
    result["rss_by_quarter_mb"] = [round(max(q)) if q else None for q in quarters]
    return {**result, "status": status, "wall_s": round(wall, 1)}


def anomalib_patchcore(config: PatchCoreConfig, sampling_ratio: float):
    """anomalib's own Patchcore with the backbone weights, layers and pooling we use."""
    from anomalib.models import Patchcore

    module = Patchcore(
        backbone=config.backbone,
        layers=list(config.layers),
        pre_trained=False,
        coreset_sampling_ratio=sampling_ratio,
        evaluator=False,
        visualizer=False,
        post_processor=False,
    )
    backbone, _ = build_backbone(config)
    module.model.feature_extractor.feature_extractor.load_state_dict(backbone.state_dict())
    if (config.pool_kernel, config.pool_stride) != (3, 1):
        raise ValueError("anomalib's Patchcore pools with kernel 3, stride 1 only")
    return module


def normalise(x: torch.Tensor, config: PatchCoreConfig) -> torch.Tensor:
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    return (x - mean) / std


def fit_anomalib(module, batches: Iterable[torch.Tensor], config: PatchCoreConfig) -> None:
    """What anomalib's Engine.fit does for Patchcore: store every embedding, then subsample.

    Seeded so that a fit repeats: the k-center start is drawn by torch, and the sampler's
    SparseRandomProjection (random_state=None) by numpy's global generator.
    """
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    module.model.train()
    with torch.no_grad():
        for x in batches:
            module.model(normalise(x, config))
    module.fit()
    module.model.eval()


def metrics(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], labels: Sequence[int], scores) -> dict:
    """Image AUROC, pixel AUROC and best pixel F1 (over all thresholds), in percent."""
    from sklearn.metrics import roc_auc_score

    pixel_scores = np.concatenate([m.ravel() for m in maps])
    pixel_labels = np.concatenate([(k > 0).ravel() for k in masks])
    _, f1 = best_f1_threshold(pixel_labels, pixel_scores)
    return {
        "image_auroc": round(100 * roc_auc_score(labels, scores), 2),
        "pixel_auroc": round(100 * roc_auc_score(pixel_labels, pixel_scores), 2),
        "pixel_f1_max": round(100 * f1, 2),
    }
