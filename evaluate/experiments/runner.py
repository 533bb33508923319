"""One experiment run, top to bottom: real data, PatchCore cells, synthetic-test cells, YOLO
and Mask R-CNN cells, segment cells (here, or as Ray tasks), then the tables and the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluate.experiments.cells import KINDS, matrix, run_cell
from evaluate.experiments.config import ExperimentConfig
from evaluate.experiments.data import ExperimentData
from evaluate.experiments.tables import write_outputs


@dataclass
class Results:
    patchcore: list[dict]
    synthetic_test: list[dict]
    yolo: list[dict]
    report: Path
    seconds: float
    segment: list[dict]
    maskrcnn: list[dict]


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
