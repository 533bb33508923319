"""Are a render's defects as large and as visible as the real ones? Per defect class of two
canonical datasets (a synthetic one and a real import), from their labels:

    nice .venv/bin/python benchmarks/defect_sizes.py SYNTHETIC_DATASET REAL_DATASET [--split train]

- instances: how many labelled instances the split holds;
- area share: an instance's pixels / its image's pixels, median and quartiles (independent of
  the image size, so a 384 px render and a real crop of another size compare);
- contrast z: (mean grey inside the instance - mean grey in the ring around it) / the ring's
  std, median (negative: darker than its surroundings); the ring is tile_realism's (1-5 px
  out), less any other instance's pixels.

A detector pretrained on renders whose breaks cover twenty times the share of a real break
learns another object; this says so from the labels alone, without a training. Compare on a
real train split, never the test split.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from tile_realism import ring_around

from evaluate.report import markdown_table
from synth.dataset import Dataset


def instance_figures(root: Path, split: str) -> dict[str, list[tuple[float, float]]]:
    """Class name -> (area share, contrast z) of every instance of the split."""
    dataset = Dataset(root)
    names = {c.id: c.name for c in dataset.classes}
    found: dict[str, list[tuple[float, float]]] = {}
    for sample in dataset.samples(split):
        annotations = sample.annotations(dataset.classes)
        ids = annotations.instance_map
        if not annotations.instances:
            continue
        grey = sample.image().astype(np.float32)
        grey = grey.mean(axis=2) if grey.ndim == 3 else grey
        for instance in annotations.instances:
            inside = ids == instance.instance_id
            if not inside.any():
                continue
            ring = ring_around(inside) & (ids == 0)
            contrast = float("nan")
            if ring.any():
                contrast = (grey[inside].mean() - grey[ring].mean()) / (grey[ring].std() + 1e-6)
            found.setdefault(names[instance.class_id], []).append((inside.sum() / inside.size, contrast))
    return found


def summary(figures: list[tuple[float, float]] | None) -> list[str]:
    if not figures:
        return ["0", "–", "–"]
    share = np.array([f[0] for f in figures]) * 100
    q1, median, q3 = np.percentile(share, [25, 50, 75])
    return [
        str(len(figures)),
        f"{median:.2f} ({q1:.2f}–{q3:.2f})",
        f"{np.nanmedian([f[1] for f in figures]):+.2f}",
    ]


@click.command()
@click.argument("synthetic", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("real", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="train", show_default=True, help="Split of both datasets.")
def main(synthetic: Path, real: Path, split: str) -> None:
    ours, theirs = instance_figures(synthetic, split), instance_figures(real, split)
    header = ["class", "instances synth / real", "area share % synth", "real", "contrast z synth", "real"]
    rows = []
    for name in sorted(set(ours) | set(theirs)):
        (n_s, share_s, z_s), (n_r, share_r, z_r) = summary(ours.get(name)), summary(theirs.get(name))
        rows.append([name, f"{n_s} / {n_r}", share_s, share_r, z_s, z_r])
    click.echo(markdown_table(header, rows))


if __name__ == "__main__":
    main()
