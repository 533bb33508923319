"""The matrix of an experiment: its cells, and how one cell is computed (in this process, or as
a Ray task: evaluate.experiments.on_ray)."""

from __future__ import annotations

from dataclasses import dataclass
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


def run_cell(data: ExperimentData, cell: Cell, runners: dict[str, Any]) -> dict:
    """One cell's result (from the cache under `data.out`, or computed and cached); `runners`
    keeps each kind's runner for the next cell."""
    kind = {"synthetic_test": "patchcore"}.get(cell.kind, cell.kind)
    if kind not in runners:
        runners[kind] = RUNNERS[kind](data)
    runner = runners[kind]
    if cell.kind == "synthetic_test":
        return runner.run_cell(cell.scenario, cell.budget, on_synthetic=True)
    if cell.kind == "patchcore":
        return runner.run_cell(cell.scenario, cell.budget)
    return runner.run_cell(cell.scenario, cell.budget, cell.seed)
