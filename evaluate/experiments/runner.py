"""One experiment run, top to bottom: real data, PatchCore cells, synthetic-test cells, YOLO
and Mask R-CNN cells, segment cells (here, or as Ray tasks), then the tables and the report."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from evaluate.experiments.cells import KINDS, cell_path, matrix, real_images, run_cell
from evaluate.experiments.config import ExperimentConfig, set_patchcore_seed
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


def run(
    config: ExperimentConfig, out: Path, ray_address: str | None = None, whole: ExperimentConfig | None = None
) -> Results:
    """Run every cell of `config` not yet in the cache under `out`, then write the tables and the
    report of every cached cell of `whole` (the experiment `config` is part of, as `restrict` makes
    parts; default `config` itself), so a run of some seeds, budgets or kinds keeps the other
    cells' rows.

    With `ray_address` (see `synth.distributed.cluster_address`) the cells run as Ray tasks
    (evaluate.experiments.on_ray), with the same cache and so the same results.
    """
    from synth.dataset import Dataset

    start = time.perf_counter()
    data = ExperimentData(config, out)
    data.import_real()  # also checks every budget against the real data
    tabled = ExperimentData(whole, out) if whole is not None else data
    if whole is not None:
        tabled.import_real()  # found in the cache; checks the budgets of the whole experiment
    cells = matrix(config)
    if ray_address is None:
        runners: dict[str, Any] = {}
        results = [run_cell(data, c, runners) for c in tqdm(cells, desc="domain-gap cells", unit="cell")]
    else:
        from evaluate.experiments.on_ray import run_on_ray

        results = run_on_ray(data, cells, ray_address)
    by_kind = {kind: [r for c, r in zip(cells, results, strict=True) if c.kind == kind] for kind in KINDS}

    found = cached_results(tabled)
    kinds = {c.name: c.kind for c in Dataset(data.real_root).classes}
    synthetic_kinds = {
        c.name: c.kind for r in found["synthetic_test"][:1] for c in Dataset(Path(r["data"])).classes
    }
    seconds = time.perf_counter() - start
    report = write_outputs(
        found["patchcore"],
        found["synthetic_test"],
        found["yolo"],
        kinds,
        synthetic_kinds,
        out,
        f"domain gap: {config.name}",
        seconds,
        found["segment"],
        found["maskrcnn"],
        real_root=data.real_root,
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


def cached_results(data: ExperimentData) -> dict[str, list[dict]]:
    """Every cached cell of the matrix of `data.config` under `data.out`, by kind, whichever
    runs computed them: detector and segment cells of every seed, and PatchCore cells of the
    experiment's PatchCore seed and of every other one a cached cell records (`--patchcore-seed`
    runs). Each result gets its scenario's `source` and the `real_images` it uses."""
    variants = [data]
    for seed in sorted(recorded_patchcore_seeds(data.out)):
        variant = data.config.model_copy(deep=True)
        set_patchcore_seed(variant, seed)
        variants.append(ExperimentData(variant, data.out))
    found: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    seen: set[Path] = set()
    for number, variant in enumerate(variants):
        runners: dict[str, Any] = {}
        for cell in matrix(variant.config):
            if number and cell.kind not in ("patchcore", "synthetic_test"):
                continue  # a PatchCore seed changes no other cell
            path = cell_path(variant, cell, runners)
            if path in seen or not path.exists():
                continue
            seen.add(path)
            result = json.loads(path.read_text())
            found[cell.kind].append(
                {**result, "source": cell.scenario.source, "real_images": real_images(variant, cell)}
            )
    return found


def recorded_patchcore_seeds(out: Path) -> set[int]:
    """The PatchCore seeds of the PatchCore cells cached under `out` (cells computed before the
    seed was recorded have none)."""
    seeds = (json.loads(path.read_text()).get("patchcore_seed") for path in (out / "cells").glob("*.json"))
    return {seed for seed in seeds if seed is not None}
