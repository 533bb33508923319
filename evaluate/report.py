"""Tables (Markdown, CSV, JSON) and one self-contained HTML report with embedded PNGs."""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    """A titled part of the HTML report: text, a table, and images (PNG files)."""

    title: str
    text: str = ""
    table: tuple[list[str], list[list]] | None = None
    images: list[tuple[str, Path]] = field(default_factory=list)


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON via a temporary file and os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def fmt(value: object) -> str:
    """A table cell: floats with 3 decimals, NaN as an en dash."""
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(
            [[("" if isinstance(v, float) and math.isnan(v) else v) for v in row] for row in rows]
        )


def write_html(path: Path, title: str, sections: Sequence[Section]) -> Path:
    """One HTML file holding every image inline (base64), readable offline and mailable."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1400px}",
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:3px 7px}",
        "th{background:#eee}figure{display:inline-block;margin:4px;vertical-align:top}",
        "figcaption{font-size:12px;max-width:420px}img{max-width:420px}",
        f"</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.table:
            header, rows = s.table
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header))
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        for caption, image in s.images:
            data = base64.b64encode(Path(image).read_bytes()).decode()
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path
