"""`evaluate domain-gap EXPERIMENT --ray [ADDRESS]`: the cells of the matrix as Ray tasks.

Each task runs what a local run runs (`cells.run_cell`) against the same cache under --out,
so the keys are the same, a rerun (here or local) finds what the other made, and the tables
are identical. The cache is a folder, so every node must see --out at the same path (one
machine, or a shared file system). Cells share what they are built from: renders, and the
synthetic coresets or weights that fine-tuned and melded cells continue from. Two tasks must
not build one thing at once, so the matrix runs in waves, each as long as its slowest task:
the renders; the cells that train from scratch (real, synthetic); those that continue from
what those made (finetune, meld); and the synthetic-test cells, which reuse every coreset.
Ray retries a task whose worker or node died; every cached thing is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import ray
from tqdm import tqdm

from evaluate.experiments.cells import Cell, run_cell
from evaluate.experiments.config import DETECTORS, ExperimentConfig, Scenario
from evaluate.experiments.data import ExperimentData, key
from synth.distributed import cluster_address, ray_connection, result


def wave(cell: Cell) -> int:
    """When a cell may run: after every cell of a lower wave has finished."""
    if cell.kind == "synthetic_test":
        return 3
    return 1 if cell.scenario.train in ("real", "synthetic") else 2


def renders(data: ExperimentData, cell: Cell) -> list[tuple[Scenario | None, dict | None]]:
    """The synthetic datasets a cell trains or is scored on, as (scenario, extra overrides) for
    `ExperimentData.synthetic_root`."""
    config = data.config
    needs: list[tuple[Scenario | None, dict | None]] = []
    if cell.scenario.train != "real":
        section = getattr(config, cell.kind) if cell.kind in (*DETECTORS, "segment") else None
        extra = section.overrides if section else None
        needs.append((cell.scenario, extra))
    if cell.kind == "synthetic_test":
        needs.append((None, None))
    return needs


@ray.remote(num_cpus=1)
def _render(config: ExperimentConfig, out: Path, scenario: Scenario | None, extra: dict | None) -> Path:
    return ExperimentData(config, out).synthetic_root(scenario, extra)


@ray.remote(num_cpus=1)
def _cell(config: ExperimentConfig, out: Path, cell: Cell, rendered: set[Path]) -> dict:
    data = ExperimentData(config, out)  # the real data was imported by the driver
    data.rendered |= rendered
    return run_cell(data, cell, {})


def run_on_ray(data: ExperimentData, cells: list[Cell], address: str) -> list[dict]:
    """The results of `cells`, in their order, computed wave by wave on the cluster at
    `address` (`--ray`'s value)."""
    out = data.out.resolve()  # the tasks' working folder is not the driver's
    with ray_connection(cluster_address(address)):
        if data.config.yolo is not None:  # the real data's YOLO view, which every YOLO cell shares
            from evaluate.experiments.yolo_cells import YoloCells

            YoloCells(data).view(data.real_root, data.real_root.name)
        needed = {key(data.synthetic_recipe(*need)): need for cell in cells for need in renders(data, cell)}
        refs = [_render.remote(data.config, out, *need) for need in needed.values()]
        rendered = set(_gather(refs, "renders"))
        results: dict[int, dict] = {}
        for number in sorted({wave(c) for c in cells}):
            chosen = [i for i, c in enumerate(cells) if wave(c) == number]
            refs = [_cell.remote(data.config, out, cells[i], rendered) for i in chosen]
            results.update(zip(chosen, _gather(refs, f"domain-gap cells, wave {number}"), strict=True))
    return [results[i] for i in range(len(cells))]


def _gather(refs: list, desc: str) -> list:
    """The tasks' values in order, with a progress bar that moves as each one finishes."""
    waiting = list(refs)
    with tqdm(total=len(refs), desc=desc, unit="task") as bar:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            result(done[0])  # a failed task stops the run at once
            bar.update()
    return [result(ref) for ref in refs]
