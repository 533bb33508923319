"""The experiment's outputs: PatchCore, synthetic-test, detector and segment tables (.md, .csv, .json)
and one self-contained report.html."""

from __future__ import annotations

from pathlib import Path

from evaluate import anomaly
from evaluate.report import Section, fmt, markdown_table, undefined, write_csv, write_html
from synth.writers import atomic_write_json, atomic_write_text

NO_IMAGE_AUROC = (
    "image AUROC is left out: the test split has no good image, and telling good images from "
    "defective ones needs both"
)


def has_good_test_images(results: list[dict]) -> bool:
    return any(r["image"]["good_images"] for r in results)


def undefined_notes(results: list[dict]) -> list[str]:
    """Why some cells' pixel metrics are undefined (– in the table), each reason once."""
    return list(dict.fromkeys(line for r in results for line in anomaly.undefined_warnings(r)))


def notes(lines: list[str]) -> str:
    """The sentences below a table."""
    return " ".join(f"{line}." for line in lines)


def table(results: list[dict], kinds: dict[str, str]) -> tuple[list[str], list[list]]:
    """One row per cell: P/R/F1 px, mean defect-wise recall, per-class recall, image AUROC
    (only where the test split has good images: NO_IMAGE_AUROC)."""
    classes = sorted(kinds, key=lambda n: (kinds[n] != "defect", n))
    image_auroc = has_good_test_images(results)
    header = ["scenario", "real good imgs", "P_px", "R_px", "F1_px", "mean DW recall"]
    header += [f"{n} (impurity, lower better)" if kinds[n] == "impurity" else n for n in classes]
    header += ["image AUROC"] * image_auroc + ["pixel AUROC", "AUPRO"]
    rows = []
    for r in results:
        recall = {**r["defect_wise"]["per_class"], **r["impurity_recall"]}
        rows.append(
            [
                r["scenario"],
                r["real_good_images"],
                r["pixel"]["precision"],
                r["pixel"]["recall"],
                r["pixel"]["f1"],
                r["defect_wise"]["mean_defect_recall"],
            ]
            + [recall.get(n, float("nan")) for n in classes]
            + [r["image"]["auroc"]] * image_auroc
            + [r["pixel"]["auroc"], r["pixel"]["aupro"]]
        )
    return header, rows


def _spread(values: list[float | None]) -> str:
    """Mean and min–max over seeds, e.g. `0.512 (0.488–0.540)`; – when a seed's value is
    undefined (the mean of an undefined value is undefined too)."""
    import numpy as np

    if any(undefined(v) for v in values):
        return fmt(None)
    return f"{np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def _false_alarms(r: dict) -> float:
    return r["good_images_with_false_alarm"] / r["good_images"] if r["good_images"] else float("nan")


def detector_table(results: list[dict]) -> tuple[list[str], list[list]]:
    """One row per detector scenario and budget: box mAPs, mask mAP50 (for models with masks),
    recall (overall and per real class) and the share of good test images with a false alarm.
    Cells of several seeds give a `seeds` column and each value as mean (min–max) over them."""
    classes = sorted({c for r in results for c in r["recall_by_class"]})
    masks = any("mask_map50" in r for r in results)
    columns = {
        "mAP50": lambda r: r["map50"],
        "mAP50-95": lambda r: r["map50_95"],
        **({"mask mAP50": lambda r: r.get("mask_map50", float("nan"))} if masks else {}),
        "recall": lambda r: r["per_class"]["defect"]["recall"],
        **{f"recall {c}": lambda r, c=c: r["recall_by_class"].get(c, float("nan")) for c in classes},
        "false alarms on good": _false_alarms,
    }
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["real_defect_images"]), []).append(r)
    seeds = any(len(cells) > 1 for cells in groups.values())
    header = ["scenario", "real defect imgs"] + ["seeds"] * seeds + list(columns)
    rows = []
    for (scenario, images), cells in groups.items():
        values = [[value(c) for c in cells] for value in columns.values()]
        row = [v[0] for v in values] if not seeds else [_spread(v) for v in values]
        rows.append([scenario, images] + [len(cells)] * seeds + row)
    return header, rows


def segment_table(results: list[dict]) -> tuple[list[str], list[list]]:
    """One row per segment scenario and budget: mean (min–max over seeds) of pixel F1, IoU and
    mean defect-wise recall, and the mean pixel AUROC."""
    header = ["scenario", "real defect imgs", "seeds", "F1_px", "IoU_px", "mean DW recall", "pixel AUROC"]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["real_defect_images"]), []).append(r)
    rows = []
    for (scenario, images), cells in groups.items():
        rows.append(
            [
                scenario,
                images,
                len(cells),
                _spread([c["pixel"]["f1"] for c in cells]),
                _spread([c["pixel"]["iou"] for c in cells]),
                _spread([c["defect_wise"]["mean_defect_recall"] for c in cells]),
                _spread([c["pixel"]["auroc"] for c in cells]),
            ]
        )
    return header, rows


def segment_sections(results: list[dict], out: Path) -> list[Section]:
    """The segment table and each cell's numbers, curves and overlays."""
    if not results:
        return []
    from evaluate.segment import report_sections

    sections = [
        Section(
            "Supervised segmentation (train/segment)",
            text=(
                "A defect segmenter per cell and seed (impurities are background), thresholded at max "
                "pixel F1 on the real validation split and measured on the real test split; k counts "
                "real train images with defect masks. Values: mean (min–max) over the seeds."
            ),
            table=segment_table(results),
        )
    ]
    for r in results:
        sections += report_sections(r, out / r["cell_dir"], f"segment {r['cell']}")
    return sections


def _write_tables(
    out: Path, stem: str, header: list[str], rows: list[list], seconds: float, note: str = ""
) -> None:
    atomic_write_text(out / f"{stem}.md", markdown_table(header, rows) + (f"\n{note}\n" if note else ""))
    write_csv(out / f"{stem}.csv", header, rows)
    atomic_write_json(out / f"{stem}.json", {"header": header, "rows": rows, "seconds": seconds})


DETECTOR_TITLES = {"yolo": "YOLO", "maskrcnn": "Mask R-CNN"}


def detector_sections(results: list[dict], out: Path) -> list[Section]:
    """A detector kind's table and each cell's example detections."""
    if not results:
        return []
    title = DETECTOR_TITLES[results[0].get("model", "yolo")]  # cells cached before `model` are YOLO's
    conf = results[0]["conf"]
    masks = " and COCO mask mAP (from the exact instance masks)" if "mask_map50" in results[0] else ""
    sections = [
        Section(
            f"{title} (one class: defect)",
            text=(
                f"A single-class detector per cell (every defect class is `defect`, impurities are "
                f"background), scored with COCO box mAP{masks} on the real test split; k counts real "
                f"train images with labelled defects. "
                f"Recall and false alarms at confidence {conf}: a defect is found when a box of "
                f"IoU >= 0.5 covers it; false alarms = share of good test images with any box. "
                f"With several seeds: mean (min–max) over them."
            ),
            table=detector_table(results),
        )
    ]
    legend = "Boxes: green = found, red = missed, yellow = false alarm (at the working confidence)."
    for r in results:
        examples = out / r["examples_dir"]
        images = [(image_id, examples / f"{image_id}.png") for image_id in r["examples"]]
        sections.append(Section(f"{title} {r['cell']}", legend, images=images))
    return sections


def synthetic_test_sections(results: list[dict], kinds: dict[str, str], out: Path) -> list[Section]:
    """The synthetic-test table and each cell's examples (false alarms on impurities show here)."""
    if not results:
        return []
    sections = [
        Section(
            "Synthetic test split (impurities)",
            text=(
                "Every cell again, thresholded at max pixel F1 on the validation split of the "
                "experiment's own synthetic data and measured on its test split, impurities "
                "included: an impurity column is the share of impurities flagged (lower is better)."
            ),
            table=table(results, kinds),
        )
    ]
    for r in results:
        sections += anomaly.report_sections(r, out / r["cell_dir"], f"synthetic test: {r['cell']}")
    return sections


def write_outputs(
    results: list[dict],
    synthetic_results: list[dict],
    yolo_results: list[dict],
    kinds: dict[str, str],
    synthetic_kinds: dict[str, str],
    out: Path,
    title: str,
    seconds: float,
    segment_results: list[dict] | None = None,
    maskrcnn_results: list[dict] | None = None,
) -> Path:
    """table.* (PatchCore), synthetic_test_table.*, yolo_table.*, maskrcnn_table.* and
    segment_table.* (each only for cells of its kind: a run of other kinds leaves a table as it
    was) and the self-contained report.html."""
    header, rows = table(results, kinds)
    image_auroc = [] if not results or has_good_test_images(results) else [NO_IMAGE_AUROC]
    note = notes([*undefined_notes(results), *image_auroc])
    if results:
        _write_tables(out, "table", header, rows, seconds, note)
    if synthetic_results:
        synthetic_note = notes(undefined_notes(synthetic_results))
        _write_tables(
            out, "synthetic_test_table", *table(synthetic_results, synthetic_kinds), seconds, synthetic_note
        )
    for stem, detector_results in (("yolo_table", yolo_results), ("maskrcnn_table", maskrcnn_results)):
        if detector_results:
            _write_tables(out, stem, *detector_table(detector_results), seconds)
    if segment_results:
        segment_note = notes(undefined_notes(segment_results))
        _write_tables(out, "segment_table", *segment_table(segment_results), seconds, segment_note)
    sections = []
    if results:
        k = results[0]["defect_wise"]["k"]
        sections.append(
            Section(
                "Summary",
                text=(
                    f"Every cell is thresholded at max pixel F1 on the real validation split and "
                    f"measured on the real test split. A defect counts as found when at least {k}% "
                    f"of its pixels are flagged (0 = one pixel). Impurity recall: lower is better. {note}"
                ).strip(),
                table=(header, rows),
            )
        )
    for r in results:
        sections += anomaly.report_sections(r, out / r["cell_dir"], r["cell"])
    sections += synthetic_test_sections(synthetic_results, synthetic_kinds, out)
    sections += detector_sections(yolo_results, out) + detector_sections(maskrcnn_results or [], out)
    sections += segment_sections(segment_results or [], out)
    return write_html(out / "report.html", title, sections)
