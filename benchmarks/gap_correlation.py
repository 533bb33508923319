"""Does the gap score predict usefulness? Rank correlation over scene variants (issue 13, item 1).

Runs a domain-gap experiment whose scenarios are synthetic-only scene variants (cached like any
domain-gap run), measures each variant's gap score (evaluate.gap) against the good images of
the real train split, and prints the table (variant, MMD², coverage ratio, image AUROC, AUPRO
on the real test split), one machine-readable line per variant, and the Spearman correlations:

    nohup nice /usr/bin/time -v .venv/bin/python benchmarks/gap_correlation.py \
        experiments/gap_variants.yaml --out runs/gap_variants > runs/gap_correlation.log 2>&1 &

A useful score correlates negatively with AUROC and AUPRO (a larger gap, a worse model).
"""

import json
import time
from pathlib import Path

import click
from scipy.stats import spearmanr

from evaluate.experiments.config import load_experiment, patchcore_config
from evaluate.experiments.data import ExperimentData
from evaluate.experiments.runner import run
from evaluate.gap import GapSettings, load_patches, run_gap
from evaluate.report import markdown_table
from synth.writers import atomic_write_json

HEADER = ["scene variant", "MMD²", "coverage ratio", "unexplained share", "image AUROC", "AUPRO"]


@click.command()
@click.argument("experiment", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/gap_variants"))
@click.option("--seed", type=int, default=0, help="Seed of the gap score's subsets, halves and coresets.")
def main(experiment: Path, out: Path, seed: int) -> None:
    start = time.perf_counter()
    config = load_experiment(experiment)
    synthetic_only = [s for s in config.scenarios if s.train == "synthetic"]
    if len(synthetic_only) != len(config.scenarios):
        raise click.ClickException("every scenario must be a synthetic-only one (train: synthetic)")
    cells = {r["scenario"]: r for r in run(config, out).patchcore}
    data = ExperimentData(config, out)
    features = patchcore_config(config, synthetic_only[0])
    settings = GapSettings(coreset_size=features.coreset_size, seed=seed)
    real = load_patches(data.real_root, features, settings, "real")  # train split, good images only
    rows = []
    for scenario in synthetic_only:
        gap = run_gap(
            data.synthetic_root(scenario),
            data.real_root,
            out / "gap" / scenario.name,
            features,
            settings,
            real,
        )
        cell = cells[scenario.name]
        row = [
            scenario.name,
            gap["mmd2"],
            gap["coverage_ratio"],
            gap["unexplained_share"],
            cell["image"]["auroc"],
            cell["pixel"]["aupro"],
        ]
        rows.append(row)
        print(json.dumps(dict(zip(HEADER, row, strict=True))), flush=True)
    correlations = []
    for score in ("MMD²", "coverage ratio", "unexplained share"):
        for target in ("image AUROC", "AUPRO"):
            rho, p = spearmanr(
                [r[HEADER.index(score)] for r in rows], [r[HEADER.index(target)] for r in rows]
            )
            correlations.append([score, target, float(rho), float(p)])
    print(markdown_table(HEADER, rows))
    print(markdown_table(["score", "against", "Spearman ρ", "p"], correlations))
    seconds = time.perf_counter() - start
    atomic_write_json(
        out / "gap_correlation.json",
        {"header": HEADER, "rows": rows, "correlations": correlations, "seconds": seconds},
    )
    print(f"{len(rows)} variants in {seconds:.0f} s; wrote {out / 'gap_correlation.json'}")


if __name__ == "__main__":
    main()
