"""The experiment's outputs: PatchCore, synthetic-test, detector and segment tables (.md, .csv, .json)
and one self-contained report.html."""

from __future__ import annotations

from collections.abc import Callable
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


def _grouped(
    results: list[dict], budget: tuple[str, str], columns: dict[str, Callable[[dict], object]]
) -> tuple[list[str], list[list]]:
    """One row per scenario and real budget (`budget`: its header and its field in a cell).
    Cells of several seeds give a `seeds` column and each value as mean (min–max) over them;
    cells that use real images beyond their budget (appearance references, the 2D baseline's
    good images) give a `real images` column counting every one."""
    header_name, field = budget
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r[field]), []).append(r)
    seeds = any(len(cells) > 1 for cells in groups.values())
    every = any(r.get("real_images", r[field]) != r[field] for r in results)
    header = ["scenario", header_name] + ["real images"] * every + ["seeds"] * seeds + list(columns)
    rows = []
    for (scenario, images), cells in groups.items():
        values = [[value(c) for c in cells] for value in columns.values()]
        row = [v[0] for v in values] if not seeds else [_spread(v) for v in values]
        used = [cells[0].get("real_images", images)] * every
        rows.append([scenario, images, *used] + [len(cells)] * seeds + row)
    return header, rows


def table(results: list[dict], kinds: dict[str, str]) -> tuple[list[str], list[list]]:
    """One row per scenario and budget: P/R/F1 px, mean defect-wise recall, per-class recall,
    image AUROC (only where the test split has good images: NO_IMAGE_AUROC), pixel AUROC and
    AUPRO; cells of several PatchCore seeds (`--patchcore-seed` runs) as mean (min–max)."""
    classes = sorted(kinds, key=lambda n: (kinds[n] != "defect", n))

    def recall(r: dict, name: str) -> float:
        return {**r["defect_wise"]["per_class"], **r["impurity_recall"]}.get(name, float("nan"))

    columns: dict[str, Callable[[dict], object]] = {
        "P_px": lambda r: r["pixel"]["precision"],
        "R_px": lambda r: r["pixel"]["recall"],
        "F1_px": lambda r: r["pixel"]["f1"],
        "mean DW recall": lambda r: r["defect_wise"]["mean_defect_recall"],
        **{
            f"{n} (impurity, lower better)" if kinds[n] == "impurity" else n: lambda r, n=n: recall(r, n)
            for n in classes
        },
        **({"image AUROC": lambda r: r["image"]["auroc"]} if has_good_test_images(results) else {}),
        "pixel AUROC": lambda r: r["pixel"]["auroc"],
        "AUPRO": lambda r: r["pixel"]["aupro"],
    }
    return _grouped(results, ("real good imgs", "real_good_images"), columns)


def _spread(values: list) -> str:
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
    return _grouped(results, ("real defect imgs", "real_defect_images"), columns)


def segment_table(results: list[dict]) -> tuple[list[str], list[list]]:
    """One row per segment scenario and budget: mean (min–max over seeds) of pixel F1, IoU,
    mean defect-wise recall and pixel AUROC (and `real images`, as in `_grouped`)."""
    every = any(r.get("real_images", r["real_defect_images"]) != r["real_defect_images"] for r in results)
    header = ["scenario", "real defect imgs"] + ["real images"] * every
    header += ["seeds", "F1_px", "IoU_px", "mean DW recall", "pixel AUROC"]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["real_defect_images"]), []).append(r)
    rows = []
    for (scenario, images), cells in groups.items():
        rows.append(
            [scenario, images]
            + [cells[0].get("real_images", images)] * every
            + [
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
        sections += anomaly.report_sections(r, out / r["cell_dir"], f"synthetic test: {_title(r)}")
    return sections


MIN_TEST_DEFECTIVE = 20  # defective test images below which a warning says recall moves in big steps
MIN_TEST_INSTANCES = 5  # instances of a class in the test split below which its recall is warned about


def real_counts(root: Path) -> tuple[list[str], list[list], list[str]]:
    """The counts behind every number: per split of the imported real data, its images (good and
    defective) and each class's images and instances; and a warning for each thing in the test
    split too small to measure on (fewer than MIN_TEST_DEFECTIVE defective images, a class with
    fewer than MIN_TEST_INSTANCES instances)."""
    from synth.config import SPLITS
    from synth.dataset import Dataset

    dataset = Dataset(root)
    names = [c.name for c in dataset.classes if c.kind == "defect"]
    names += [c.name for c in dataset.classes if c.kind != "defect"]
    header = ["split", "images", "good", "defective"]
    header += [f"{n} {what}" for n in names for what in ("imgs", "instances")]
    rows: list[list] = []
    warnings = []
    for split in SPLITS:
        samples = dataset.samples(split)
        good = sum(s.good for s in samples)
        instances = {n: 0 for n in names}
        images = {n: 0 for n in names}
        for s in samples:
            found = [i["class_name"] for i in s.meta["instances"]]
            for n in names:
                instances[n] += found.count(n)
                images[n] += n in found
        rows.append(
            [
                split,
                len(samples),
                good,
                len(samples) - good,
                *(x for n in names for x in (images[n], instances[n])),
            ]
        )
        if split != "test":
            continue
        if len(samples) - good < MIN_TEST_DEFECTIVE:
            warnings.append(
                f"the real test split holds {len(samples) - good} defective images (fewer than "
                f"{MIN_TEST_DEFECTIVE}): each image found or missed moves recall in a big step"
            )
        warnings += [
            f"class {n} has {instances[n]} instances in the real test split (fewer than "
            f"{MIN_TEST_INSTANCES}): its recall rests on too few instances"
            for n in names
            if instances[n] < MIN_TEST_INSTANCES
        ]
    return header, rows, warnings


def headline_chart(kind: str, results: list[dict], out: Path) -> Path:
    """A bar per scenario and budget: the mean of the kind's headline metric over seeds, its
    min–max range as the error bar (groups with an undefined value are left out)."""
    from evaluate.experiments.verdict import HEADLINES, TITLES
    from evaluate.plots import plot_ranges

    metric, value = HEADLINES[kind]
    budget = "real_good_images" if kind == "patchcore" else "real_defect_images"
    groups: dict[tuple, list] = {}
    for r in results:
        groups.setdefault((r["scenario"], r[budget]), []).append(value(r))
    bars = {f"{s}\n{k} real": v for (s, k), v in groups.items() if not any(undefined(x) for x in v)}
    return plot_ranges(bars, out / f"{kind}_headline.png", f"{TITLES[kind]}: {metric}", metric)


def verdict_sections(by_kind: dict[str, list[dict]], real_root: Path, out: Path) -> list[Section]:
    """verdict.json (each verdict with its line, and the real data's warnings), each kind's
    headline chart, and the report's verdict and real-data sections."""
    from evaluate.experiments.verdict import RULE, verdicts

    header, rows, warnings = real_counts(real_root)
    found = [v for kind, results in by_kind.items() if results for v in verdicts(kind, results)]
    atomic_write_json(out / "verdict.json", {"rule": RULE, "verdicts": found, "warnings": warnings})
    charts = [
        (f"{kind}: mean and min–max over seeds", headline_chart(kind, r, out))
        for kind, r in by_kind.items()
        if r
    ]
    table_rows = [[v["model"], v["scenario"], v["against"], v["budget"], v["verdict"]] for v in found]
    unjudged = (
        ""
        if found
        else " No cell here has a counterpart to be judged against (real_only, or a Perlin scenario, "
        "of the same training at the same budget)."
    )
    sections = [
        Section(
            "Verdict",
            text=RULE + unjudged + "".join(f" Warning: {w}." for w in warnings),
            table=(["model", "scenario", "against", "real budget", "verdict"], table_rows) if found else None,
            images=charts,
        ),
        Section(
            "Real data",
            text="Images and instances per split and class of the imported real data.",
            table=(header, rows),
        ),
    ]
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
    real_root: Path | None = None,
) -> Path:
    """table.* (PatchCore), synthetic_test_table.*, yolo_table.*, maskrcnn_table.* and
    segment_table.* (each only for cells of its kind: a run of other kinds leaves a table as it
    was) and the self-contained report.html; with the imported real data `real_root`, the
    report opens with the verdict (also in verdict.json, and a headline chart per model kind)
    and the real data's counts."""
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
    if real_root is not None:
        by_kind = {
            "patchcore": results,
            "yolo": yolo_results,
            "maskrcnn": maskrcnn_results or [],
            "segment": segment_results or [],
        }
        sections += verdict_sections(by_kind, real_root, out)
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
        sections += anomaly.report_sections(r, out / r["cell_dir"], _title(r))
    sections += synthetic_test_sections(synthetic_results, synthetic_kinds, out)
    sections += detector_sections(yolo_results, out) + detector_sections(maskrcnn_results or [], out)
    sections += segment_sections(segment_results or [], out)
    return write_html(out / "report.html", title, sections)


def _title(r: dict) -> str:
    """A PatchCore cell's section title: its name, and its PatchCore seed where it has one."""
    seed = r.get("patchcore_seed")
    return r["cell"] if seed is None else f"{r['cell']} (PatchCore seed {seed})"
