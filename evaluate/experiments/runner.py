"""One experiment run, top to bottom: real data, PatchCore cells, synthetic-test cells, YOLO
cells, segment cells, then the tables and the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from evaluate.experiments.config import ExperimentConfig
from evaluate.experiments.data import ExperimentData
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


def run(config: ExperimentConfig, out: Path) -> Results:
    """Run every cell not yet in the cache under `out`, then write the tables and report."""
    from synth.dataset import Dataset

    start = time.perf_counter()
    data = ExperimentData(config, out)
    data.import_real()  # also checks every budget against the real data

    patchcore = PatchCoreCells(data)
    cells = config.cells() if config.patchcore_cells else []
    results = [patchcore.run_cell(s, b) for s, b in tqdm(cells, desc="domain-gap cells", unit="cell")]
    synthetic_results = []
    if config.synthetic_test:
        synthetic_results = [
            patchcore.run_cell(s, b, on_synthetic=True)
            for s, b in tqdm(cells, desc="synthetic-test cells", unit="cell")
        ]
    yolo_results = []
    if config.yolo is not None:
        yolo = YoloCells(data)
        yolo_results = [
            yolo.run_cell(s, b) for s, b in tqdm(config.yolo_cells(), desc="YOLO cells", unit="cell")
        ]

    segment_results = []
    if config.segment is not None:
        segment = SegmentCells(data)
        segment_results = [
            segment.run_cell(s, b, seed)
            for s, b, seed in tqdm(config.segment_cells(), desc="segment cells", unit="cell")
        ]

    kinds = {c.name: c.kind for c in Dataset(data.real_root).classes}
    synthetic_kinds = {
        c.name: c.kind for r in synthetic_results[:1] for c in Dataset(Path(r["data"])).classes
    }
    seconds = time.perf_counter() - start
    report = write_outputs(
        results,
        synthetic_results,
        yolo_results,
        kinds,
        synthetic_kinds,
        out,
        f"domain gap: {config.name}",
        seconds,
        segment_results,
    )
    return Results(results, synthetic_results, yolo_results, report, seconds, segment_results)
