"""Tables (Markdown, CSV, JSON) and one self-contained HTML report with embedded images."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from synth.writers import atomic_write_text

THUMBNAIL_WIDTH = 420  # px an image is shown at in the report


@dataclass
class Section:
    """A titled part of the HTML report: text, a table, and images (PNG files)."""

    title: str
    text: str = ""
    table: tuple[list[str], list[list]] | None = None
    images: list[tuple[str, Path]] = field(default_factory=list)


def undefined(value: object) -> bool:
    """Whether a metric is undefined: NaN in memory, None once read back from JSON."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value: object) -> str:
    """A table cell: floats with 3 decimals, an undefined value as an en dash."""
    if undefined(value):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows([[("" if undefined(v) else v) for v in row] for row in rows])
    atomic_write_text(path, text.getvalue())


def write_html(path: Path, title: str, sections: Sequence[Section]) -> Path:
    """One HTML file holding every image inline (base64), readable offline and mailable."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1400px}",
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:3px 7px}",
        "th{background:#eee}figure{display:inline-block;margin:4px;vertical-align:top}",
        f"figcaption{{font-size:12px;max-width:{THUMBNAIL_WIDTH}px}}img{{max-width:{THUMBNAIL_WIDTH}px}}",
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
            parts.append(
                f"<figure><img src='data:image/jpeg;base64,{_thumbnail(Path(image))}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    atomic_write_text(path, "\n".join(parts))
    return path


def _thumbnail(image: Path) -> str:
    """Base64 JPEG at twice the displayed width: full-size PNG overlays made 50 MB reports."""
    pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if pixels is None:
        raise OSError(f"{image}: cannot read image for the report")
    scale = min(1.0, 2 * THUMBNAIL_WIDTH / pixels.shape[1])
    if scale < 1.0:
        pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(buffer.tobytes()).decode()
