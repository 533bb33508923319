"""The import report: the error of an import that imports nothing, and the report as printed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from evaluate.formats.source import (
    Source,
)


def nothing_imported(
    source: Source, skipped: list[dict[str, str]], out: Path, dropped: Sequence[dict[str, Any]] = ()
) -> str:
    """The error of an import that skipped every image (or dropped all its tiles), with the skip
    and drop lists (nothing was written)."""
    why = "skipped" if not dropped else f"skipped or left no tile ({len(dropped)} tiles dropped)"
    lines = [
        f"{source.src}: nothing imported as {source.format}: all {len(source.items)} images were "
        f"{why}, so nothing was written to {out}; the {len(skipped)} skips:"
    ]
    lines += [f"  skipped {s['file']}: {s['reason']}" for s in skipped]
    lines += [f"  dropped tile {d['id']}: {d['valid_fraction']:.0%} of it is valid" for d in dropped]
    return "\n".join(lines)


def echo_report(report: dict[str, Any], out: Path) -> None:
    """The report of an import as `evaluate import` prints it: counts on stdout, then every
    dropped tile, skip and note on stderr."""
    click.echo(f"imported {report['imported']} images into {out}: {report['splits']}")
    if "source_images" in report:
        click.echo(f"from {sum(report['source_images'].values())} source images: {report['source_images']}")
    for drop in report.get("dropped_tiles", []):
        click.echo(f"dropped tile {drop['id']}: {drop['valid_fraction']:.0%} of it is valid", err=True)
    for skip in report["skipped"]:
        click.echo(f"skipped {skip['file']}: {skip['reason']}", err=True)
    for note in report["notes"]:
        click.echo(f"note: {note}", err=True)
    if report["skipped"] or report["notes"] or report.get("dropped_tiles"):
        dropped = f", {len(report['dropped_tiles'])} tiles dropped" if report.get("dropped_tiles") else ""
        click.echo(
            f"{len(report['skipped'])} skipped, {len(report['notes'])} notes{dropped}; "
            f"listed in {out / 'import_report.json'}",
            err=True,
        )
