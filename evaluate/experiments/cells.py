"""The matrix of an experiment: its cells, and how one cell is computed (in this process, or as
a Ray task: evaluate.experiments.on_ray)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluate.experiments.config import DETECTORS, Budget, ExperimentConfig, Scenario
from evaluate.experiments.data import ExperimentData
from evaluate.experiments.maskrcnn_cells import MaskRCNNCells
from evaluate.experiments.patchcore_cells import PatchCoreCells
from evaluate.experiments.segment_cells import SegmentCells
from evaluate.experiments.yolo_cells import YoloCells

KINDS = ("patchcore", "synthetic_test", "yolo", "maskrcnn", "segment")
RUNNERS = {"patchcore": PatchCoreCells, "yolo": YoloCells, "maskrcnn": MaskRCNNCells, "segment": SegmentCells}


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix: what `run_cell` computes, in this process or as a Ray task."""

    kind: str  # one of KINDS
    scenario: Scenario
    budget: Budget | None
    seed: int | None = None  # segment and detector cells


def matrix(config: ExperimentConfig) -> list[Cell]:
    """Every cell of the experiment, in the order of its tables."""
    pairs = config.patchcore_pairs()
    cells = [Cell("patchcore", s, b) for s, b in pairs]
    if config.synthetic_test:
        cells += [Cell("synthetic_test", s, b) for s, b in pairs]
    for kind in DETECTORS:
        cells += [Cell(kind, s, b, seed) for s, b, seed in config.detector_cells(kind)]
    if config.segment is not None:
        cells += [Cell("segment", s, b, seed) for s, b, seed in config.segment_cells()]
    return cells


def _runner(data: ExperimentData, cell: Cell, runners: dict[str, Any]) -> Any:
    """The runner of a cell's kind, made once and kept in `runners` for the next cell."""
    kind = {"synthetic_test": "patchcore"}.get(cell.kind, cell.kind)
    if kind not in runners:
        runners[kind] = RUNNERS[kind](data)
    return runners[kind]


def run_cell(data: ExperimentData, cell: Cell, runners: dict[str, Any]) -> dict:
    """One cell's result (from the cache under `data.out`, or computed and cached); `runners`
    keeps each kind's runner for the next cell."""
    runner = _runner(data, cell, runners)
    if cell.kind == "synthetic_test":
        return runner.run_cell(cell.scenario, cell.budget, on_synthetic=True)
    if cell.kind == "patchcore":
        return runner.run_cell(cell.scenario, cell.budget)
    return runner.run_cell(cell.scenario, cell.budget, cell.seed)


def cell_path(data: ExperimentData, cell: Cell, runners: dict[str, Any]) -> Path:
    """Where a cell's result is cached under `data.out`, whether or not it has been computed."""
    runner = _runner(data, cell, runners)
    if cell.kind in ("patchcore", "synthetic_test"):
        return runner.cell_path(cell.scenario, cell.budget, on_synthetic=cell.kind == "synthetic_test")
    return runner.cell_path(cell.scenario, cell.budget, cell.seed)


def real_images(data: ExperimentData, cell: Cell) -> int:
    """Every real image a cell uses: its budget's real train images, and when its synthetic images
    are made from the real data (an appearance transfer to `reference: real`, the 2D baseline's
    Perlin anomalies) every real good train image they draw from."""
    used: list[Path] = []
    if cell.budget is not None:
        patchcore = cell.kind in ("patchcore", "synthetic_test")
        used = data.real_good_train(cell.budget) if patchcore else data.real_defect_train(cell.budget)
    if cell.scenario.train != "real":
        section = getattr(data.config, cell.kind) if cell.kind in (*DETECTORS, "segment") else None
        if "real" in data.synthetic_recipe(cell.scenario, section.overrides if section else None):
            used = [*used, *data.real_good_train("all")]
    return len(set(used))
