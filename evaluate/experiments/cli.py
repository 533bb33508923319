"""`evaluate domain-gap EXPERIMENT.yaml`: validate the file, run the matrix, print the tables and
the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evaluate.experiments.config import (
    CELL_KINDS,
    ExperimentError,
    load_experiment,
    raster_simplifications,
    restrict,
)
from evaluate.experiments.runner import run
from synth.outputs import OutputPath
from synth.runs import default_out


@click.command("domain-gap")
@click.argument("experiment", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=OutputPath(folder=True),
    default=None,
    help="Output folder [runs/domain-gap/<experiment name>].",
)
@click.option(
    "--real",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Real data source, instead of the file's real.src.",
)
@click.option(
    "--scene",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Scene config, instead of the file's synthetic.scene.",
)
@click.option(
    "--patchcore-seed",
    type=int,
    default=None,
    help="PatchCore seed of every cell, instead of the file's (repeat runs measure the spread; "
    "cells whose effective settings are unchanged come from the cache).",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    help="Run only this scenario's cells (repeatable; default every scenario of the file).",
)
@click.option(
    "--budget",
    "budgets",
    multiple=True,
    help="Run only the cells of this real budget, a count or `all` (repeatable; default every budget).",
)
@click.option(
    "--seed",
    "seeds",
    multiple=True,
    type=int,
    help="Run only the detector and segment cells of this seed (repeatable; one of the sections' "
    "`seeds`; default every seed).",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(CELL_KINDS),
    help="Run only cells of this kind (repeatable; default every kind the file has).",
)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run the cells as Ray tasks: alone, on a local instance; `auto`, this node's cluster; or "
    "host:port. Every node must see --out at the same path.",
)
def domain_gap(
    experiment: Path,
    out: Path | None,
    real: Path | None,
    scene: Path | None,
    patchcore_seed: int | None,
    scenarios: tuple[str, ...],
    budgets: tuple[str, ...],
    seeds: tuple[int, ...],
    kinds: tuple[str, ...],
    ray_address: str | None,
) -> None:
    """Run a domain-gap experiment matrix; finished cells are not recomputed."""
    whole = load_experiment(experiment, real, scene, patchcore_seed)
    try:
        config = restrict(whole, scenarios, budgets, kinds, seeds)
    except ExperimentError as e:
        raise ExperimentError(f"{experiment}: {e}") from None
    for line in raster_simplifications(config):
        click.echo(f"Warning: {line}; use renderer: cycles for them", err=True)
    out = out or default_out("domain-gap", config.name)
    results = run(config, out, ray_address, whole)
    if results.patchcore:
        click.echo((out / "table.md").read_text())
    if results.synthetic_test:
        click.echo("On the synthetic test split:\n" + (out / "synthetic_test_table.md").read_text())
    if results.yolo:
        click.echo((out / "yolo_table.md").read_text())
    if results.maskrcnn:
        click.echo("Mask R-CNN:\n" + (out / "maskrcnn_table.md").read_text())
    if results.segment:
        click.echo("Segmenters:\n" + (out / "segment_table.md").read_text())
    verdict = json.loads((out / "verdict.json").read_text())
    lines = [v["line"] for v in verdict["verdicts"]] + [f"Warning: {w}" for w in verdict["warnings"]]
    click.echo("Verdict:\n" + "\n".join(lines) + "\n")
    click.echo(
        f"{len(results.patchcore)} PatchCore, {len(results.yolo)} YOLO, {len(results.maskrcnn)} Mask R-CNN "
        f"and {len(results.segment)} segment "
        f"cells in {results.seconds:.0f} s this run; wrote the tables (.md, .csv, .json) by {results.report}"
    )
