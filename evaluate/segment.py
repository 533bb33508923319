"""`evaluate segment`: a segmenter's sigmoid map is a score map, so the evaluation is
evaluate.anomaly's (max pixel F1 threshold on val, every pixel / defect-wise / impurity metric,
curves and overlays) plus the pixel IoU that segmentation is usually quoted with."""

from __future__ import annotations

from pathlib import Path

import click

from evaluate import anomaly
from evaluate.report import Section
from synth.runs import default_out


def evaluate_segmenter(model, data: Path, out: Path, k: float = 0.0) -> dict:
    """Metrics on the test split of `data` (threshold from its val split), written to
    out/metrics.json with the plots and overlays of `evaluate anomaly`."""
    return anomaly.evaluate_predictor(model.predict, data, out, None, k, title="segmentation")


def report_sections(result: dict, out: Path, title: str) -> list[Section]:
    """evaluate.anomaly's sections with the IoU row after the pixel F1."""
    sections = anomaly.report_sections(result, out, title)
    header, rows = sections[0].table
    at = next(i for i, row in enumerate(rows) if row[0] == "pixel F1") + 1
    sections[0].table = (header, [*rows[:at], ["pixel IoU", result["pixel"]["iou"]], *rows[at:]])
    return sections


@click.command("segment")
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@anomaly.evaluation_options("segment", "weights")
def segment(weights: Path, data: Path, out: Path | None, k: float, device: str) -> None:
    """Evaluate a segmenter: metrics JSON, plots, overlays and an HTML report."""
    from train.segment.model import Segmenter

    model = Segmenter.load(weights, device=device)
    out = out or default_out("segment", weights.stem)
    result = evaluate_segmenter(model, data, out, k)
    anomaly.print_report(result, report_sections(result, out, "test split"), out, f"{weights.name} on {data}")
