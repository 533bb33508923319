"""Run-to-run spread of domain-gap tables over PatchCore seeds, one table per output folder.

`evaluate domain-gap` gives the spread itself: its tables hold every PatchCore seed run in its
output folder (`--patchcore-seed`) as mean (min–max), and its verdict.json judges them. This
script does the same for tables of separate folders (or tables written before that), printing,
per row, the mean and the min–max range of the chosen columns over the runs:

    evaluate domain-gap EXP.yaml --out runs/seed0                      # seed 0 (the file's)
    evaluate domain-gap EXP.yaml --out runs/seed1 --patchcore-seed 1   # renders cached
    python benchmarks/seed_spread.py runs/seed*/table.json
"""

import json
from pathlib import Path

import click

from evaluate.report import markdown_table

DEFAULT_COLUMNS = ("mean DW recall", "image AUROC", "pixel AUROC", "AUPRO")


def spread(tables: list[dict], columns: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """Markdown header and rows: per (scenario, budget), `mean (min–max)` of each column."""
    header = tables[0]["header"]
    for table in tables[1:]:
        if table["header"] != header:
            raise click.ClickException("the tables have different columns")
    missing = [c for c in columns if c not in header]
    if missing:
        raise click.ClickException(f"no column {missing} in the tables; they have {header}")
    indices = [header.index(c) for c in columns]
    keyed = [{tuple(row[:2]): row for row in table["rows"]} for table in tables]
    out = []
    for key in keyed[0]:
        if any(key not in rows for rows in keyed[1:]):
            raise click.ClickException(f"row {key} is missing from some tables")
        cells = [str(v) for v in key]
        for i in indices:
            values = [rows[key][i] for rows in keyed]
            mean = sum(values) / len(values)
            cells.append(f"{mean:.3f} ({min(values):.3f}–{max(values):.3f})")
        out.append(cells)
    return [*header[:2], *columns], out


@click.command()
@click.argument("tables", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--column", "columns", multiple=True, help="Column to summarise (repeatable).")
def main(tables: tuple[Path, ...], columns: tuple[str, ...]) -> None:
    loaded = [json.loads(p.read_text()) for p in tables]
    header, rows = spread(loaded, columns or DEFAULT_COLUMNS)
    print(f"{len(loaded)} runs: mean (min–max)\n")
    print(markdown_table(header, rows), end="")


if __name__ == "__main__":
    main()
