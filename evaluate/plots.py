"""PNG figures of the evaluation: threshold curves, defect-wise recall over k, overlays."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evaluate.metrics import ThresholdCurves
from synth.writers import atomic_write_bytes, atomic_write_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Overlay colours (RGB): found defect pixels, missed defect pixels, false alarms.
TRUE_POSITIVE = (0, 200, 0)
MISS = (230, 30, 30)
FALSE_ALARM = (255, 200, 0)


def plot_threshold_curves(curves: ThresholdCurves, chosen: float, path: Path, title: str) -> Path:
    """Accuracy, precision, recall, F1 and F2 against the threshold, the chosen one marked."""
    fig, ax = new_figure()
    for name in ("accuracy", "precision", "recall", "f1", "f2"):
        ax.plot(curves.thresholds, getattr(curves, name), label=name)
    ax.axvline(chosen, color="k", linestyle="--", label=f"chosen {chosen:.4g}")
    ax.set(xlabel="threshold (score >= t is anomalous)", ylabel="value", ylim=(0, 1.02))
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def plot_recall_over_k(
    levels: Sequence[int],
    curves: Mapping[str, Sequence[float]],
    kinds: Mapping[str, str],
    path: Path,
    title: str,
) -> Path:
    """Defect-wise recall against the coverage level k; impurities dashed (lower is better)."""
    fig, ax = new_figure()
    for name, values in curves.items():
        impurity = kinds.get(name) == "impurity"
        label = f"{name} (impurity, lower is better)" if impurity else name
        ax.plot(levels, values, linestyle="--" if impurity else "-", marker=".", label=label)
    ax.set(xlabel="k: % of an instance's pixels flagged", ylabel="recall", ylim=(0, 1.02))
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def plot_ranges(bars: Mapping[str, Sequence[float]], path: Path, title: str, ylabel: str) -> Path:
    """A bar per label at the mean of its values (one per seed), the min–max range as its error
    bar; the values are drawn as dots."""
    fig, ax = new_figure()
    fig.set_size_inches(max(6.0, 0.9 * len(bars) + 1), 4.5)
    for x, values in enumerate(bars.values()):
        mean = float(np.mean(values))
        ax.bar(x, mean, color="#7aa6d6")
        ax.errorbar(x, mean, yerr=[[mean - min(values)], [max(values) - mean]], color="k", capsize=4)
        ax.plot([x] * len(values), values, "k.", markersize=4)
    ax.set_xticks(range(len(bars)), list(bars), rotation=30, ha="right", fontsize=8)
    ax.set(ylabel=ylabel, ylim=(0, 1.02))
    ax.set_title(title)
    return save_figure(fig, path)


def overlay(image: np.ndarray, pred: np.ndarray, truth: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """RGB image with found, missed and falsely flagged pixels tinted in three colours."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    out = rgb.astype(np.float32)
    for region, colour in (
        (pred & truth, TRUE_POSITIVE),
        (~pred & truth, MISS),
        (pred & ~truth, FALSE_ALARM),
    ):
        out[region] = (1 - alpha) * out[region] + alpha * np.array(colour, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def save_rgb(image: np.ndarray, path: Path) -> Path:
    """Write an RGB uint8 image as PNG (atomically)."""
    atomic_write_png(path, image)
    return path


def new_figure():
    """A figure and its axes; matplotlib is imported here, not when a command line starts."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    return fig, fig.subplots()


def save_figure(fig: Figure, path: Path) -> Path:
    """Write a figure as PNG (atomically, creating its folder)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return path
