"""One experiment run, top to bottom: real data, PatchCore cells, synthetic-test cells, YOLO
and Mask R-CNN cells, segment cells (here, or as Ray tasks), then the tables and the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluate.experiments.config import DETECTORS, Budget, ExperimentConfig, Scenario
from evaluate.experiments.data import ExperimentData
from evaluate.experiments.maskrcnn_cells import MaskRCNNCells
from evaluate.experiments.patchcore_cells import PatchCoreCells
from evaluate.experiments.segment_cells import SegmentCells
from evaluate.experiments.tables import write_outputs
from evaluate.experiments.yolo_cells import YoloCells


@dataclass
class Results:
    patchcore: list[dict]
    synthetic_test: list[dict]
    yolo: list[dict]
    report: Path
    seconds: float
    segment: list[dict]
    maskrcnn: list[dict]


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


def run(config: ExperimentConfig, out: Path, ray_address: str | None = None) -> Results:
    """Run every cell not yet in the cache under `out`, then write the tables and report.

    With `ray_address` (see `synth.distributed.cluster_address`) the cells run as Ray tasks
    (evaluate.experiments.on_ray), with the same cache and so the same results.
    """
    from synth.dataset import Dataset

    start = time.perf_counter()
    data = ExperimentData(config, out)
    data.import_real()  # also checks every budget against the real data
    cells = matrix(config)
    if ray_address is None:
        runners: dict[str, Any] = {}
        results = [run_cell(data, c, runners) for c in tqdm(cells, desc="domain-gap cells", unit="cell")]
    else:
        from evaluate.experiments.on_ray import run_on_ray

        results = run_on_ray(data, cells, ray_address)
    by_kind = {kind: [r for c, r in zip(cells, results, strict=True) if c.kind == kind] for kind in KINDS}

    kinds = {c.name: c.kind for c in Dataset(data.real_root).classes}
    synthetic_kinds = {
        c.name: c.kind for r in by_kind["synthetic_test"][:1] for c in Dataset(Path(r["data"])).classes
    }
    seconds = time.perf_counter() - start
    report = write_outputs(
        by_kind["patchcore"],
        by_kind["synthetic_test"],
        by_kind["yolo"],
        kinds,
        synthetic_kinds,
        out,
        f"domain gap: {config.name}",
        seconds,
        by_kind["segment"],
        by_kind["maskrcnn"],
    )
    return Results(
        by_kind["patchcore"],
        by_kind["synthetic_test"],
        by_kind["yolo"],
        report,
        seconds,
        by_kind["segment"],
        by_kind["maskrcnn"],
    )
