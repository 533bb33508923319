"""Evaluate an anomaly model (a PatchCore coreset) on a canonical dataset: `evaluate anomaly`.

The threshold is chosen on the validation split (maximum pixel F1) and then applied,
unchanged, to the test split; without labelled defects in the validation split the model's
own threshold (set from good images) is used. All pixel metrics are computed at the
images' own resolution: the score maps are resized to each image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import click
import cv2
import numpy as np
from tqdm import tqdm

from evaluate import metrics as m
from evaluate import plots
from evaluate.report import Section, fmt, markdown_table, undefined, write_html
from synth.annotations import Annotations
from synth.dataset import Dataset
from synth.errors import DataError
from synth.outputs import OutputPath
from synth.runs import default_out
from synth.writers import atomic_write_json
from train.devices import device_option
from train.options import Finite

# A model as the evaluation sees it: RGB uint8 images -> (score maps, image scores).
Predictor = Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]]

EXAMPLES_PER_KIND = 4
# A threshold that flags more than this share of the good test images is no operating point
# a factory would run; the report says so instead of showing recall 1.000 without a word.
MOST_GOOD_FLAGGED = 0.5
# The pixel ratios that need something to find (name in a warning, key in metrics.json).
RATIOS_OF_TRUTH = (("recall", "recall"), ("F1", "f1"), ("IoU", "iou"))


@dataclass(frozen=True)
class Scored:
    """One evaluated image: its score map (at image resolution) beside its `Annotations`."""

    id: str
    score_map: np.ndarray
    score: float
    annotations: Annotations

    @property
    def instance_map(self) -> np.ndarray:
        return self.annotations.instance_map

    @cached_property
    def instance_class(self) -> dict[int, str]:
        """Instance id -> class name."""
        names = {c.id: c.name for c in self.annotations.classes}
        return {i.instance_id: names[i.class_id] for i in self.annotations.instances}

    @cached_property
    def defect_ids(self) -> frozenset[int]:
        return frozenset(i.instance_id for i in self.annotations.defects)

    @cached_property
    def defect_mask(self) -> np.ndarray:
        return self.annotations.defect_mask()

    @property
    def defective(self) -> bool:
        return not self.annotations.good


def score_split(
    dataset: Dataset, split: str, predict: Predictor, batch_size: int = 8, view: str | None = None
) -> list[Scored]:
    """Run the model over one split of a `synth.dataset.Dataset`, on each sample's image or
    its burst `view` (`synth.dataset.Sample.image`)."""
    samples = list(dataset.samples(split))
    out: list[Scored] = []
    for start in tqdm(range(0, len(samples), batch_size), desc=f"scoring {split}", leave=False):
        batch = samples[start : start + batch_size]
        images = [s.image(view) for s in batch]
        maps, scores = predict(images)
        for sample, image, smap, score in zip(batch, images, maps, scores, strict=True):
            smap = np.asarray(smap, np.float32)
            if smap.shape != image.shape[:2]:
                smap = cv2.resize(smap, image.shape[1::-1], interpolation=cv2.INTER_LINEAR)
            out.append(Scored(sample.id, smap, float(score), sample.annotations(dataset.classes)))
    return out


def choose_threshold(val: Sequence[Scored], fallback: float | None) -> tuple[float, str]:
    """Max pixel F1 on the validation split; without defects there, the model's own threshold,
    else just above every validation image's score (from good images only)."""
    if any(s.defective for s in val):
        truth = np.concatenate([s.defect_mask.ravel() for s in val])
        scores = np.concatenate([s.score_map.ravel() for s in val])
        return m.best_f1_threshold(truth, scores)[0], "max pixel F1 on the validation split"
    if fallback is not None:
        return float(fallback), "the model's threshold (no defects in the validation split)"
    if not val:
        raise DataError("the validation split is empty and the model has no threshold")
    return m.above_all([s.score for s in val]), "just above every good validation image"


def anomaly_metrics(test: Sequence[Scored], threshold: float, kinds: dict[str, str], k: float = 0.0) -> dict:
    """Every anomaly metric (pixel, defect-wise, image, AUPRO) of the test split at one threshold."""
    truth = np.concatenate([s.defect_mask.ravel() for s in test])
    scores = np.concatenate([s.score_map.ravel() for s in test])
    px = m.confusion(scores >= threshold, truth)
    coverages = []
    for s in test:
        for iid, cov in m.instance_coverage(s.score_map >= threshold, s.instance_map).items():
            coverages.append((s.instance_class[iid], cov))
    recall = m.defect_wise_recall(coverages, k)
    defects = [n for n, kind in kinds.items() if kind == "defect"]
    image_labels = np.array([s.defective for s in test])
    image_scores = np.array([s.score for s in test])
    good_flagged = [s.score >= threshold for s in test if not s.defective]
    return {
        "threshold": threshold,
        "pixel": {
            "precision": px.precision,
            "recall": px.recall,
            "f1": px.f1,
            "iou": m.iou_from_f1(px.f1),
            "auroc": m.roc_auc(truth, scores),
            "aupro": m.aupro([s.defect_mask for s in test], [s.score_map for s in test]),
        },
        "image": {
            "auroc": m.roc_auc(image_labels, image_scores),
            "good_images": len(good_flagged),
            "good_flagged_rate": float(np.mean(good_flagged)) if good_flagged else float("nan"),
        },
        "defect_wise": {
            "k": k,
            "per_class": {n: r for n, r in recall.items() if kinds.get(n) == "defect"},
            "mean_defect_recall": m.mean_over(recall, defects),
            "curve": {
                "levels": list(m.COVERAGE_LEVELS),
                "per_class": m.defect_wise_recall_curve(coverages),
            },
        },
        "impurity_recall": {n: r for n, r in recall.items() if kinds.get(n) == "impurity"},
        "instances": {n: sum(1 for c, _ in coverages if c == n) for n in sorted(recall)},
        "images": {"test": len(test), "defective": int(image_labels.sum())},
    }


def evaluate_predictor(
    predict: Predictor,
    data: Path,
    out: Path,
    fallback_threshold: float | None = None,
    k: float = 0.0,
    title: str = "anomaly evaluation",
    view: str | None = None,
) -> dict:
    """Score val and test (on a burst `view` if given), write metrics.json, the plots and
    overlay examples into `out`."""
    dataset = Dataset(data)
    test = score_split(dataset, "test", predict, view=view)
    if not test:
        raise DataError(f"{data}: the test split is empty")
    val = score_split(dataset, "val", predict, view=view)
    threshold, source = choose_threshold(val, fallback_threshold)
    kinds = {c.name: c.kind for c in dataset.classes}
    result = anomaly_metrics(test, threshold, kinds, k)
    result["threshold_source"] = source
    if fallback_threshold is not None and fallback_threshold != threshold:
        result["model_threshold"] = anomaly_metrics(test, float(fallback_threshold), kinds, k)
    result["warnings"] = undefined_warnings(result) + operating_point_warnings(result)
    result["data"] = str(data)
    if view is not None:
        result["burst"] = view
    curve_split = val if any(s.defective for s in val) else test
    figures = write_figures(curve_split, test, threshold, result, kinds, dataset, out)
    result["figures"] = {name: str(path.relative_to(out)) for name, path in figures}
    atomic_write_json(out / "metrics.json", result)
    return result


def write_figures(
    val: Sequence[Scored],
    test: Sequence[Scored],
    threshold: float,
    result: dict,
    kinds: dict[str, str],
    dataset: Dataset,
    out: Path,
) -> list[tuple[str, Path]]:
    """Threshold curves (on the split the threshold was chosen on), recall over k, overlays."""
    truth = np.concatenate([s.defect_mask.ravel() for s in val])
    scores = np.concatenate([s.score_map.ravel() for s in val])
    figures = [
        (
            "threshold curves",
            plots.plot_threshold_curves(
                m.threshold_curves(truth, scores),
                threshold,
                out / "threshold_curves.png",
                "pixel metrics against the threshold (validation split)",
            ),
        ),
        (
            "defect-wise recall over k",
            plots.plot_recall_over_k(
                result["defect_wise"]["curve"]["levels"],
                result["defect_wise"]["curve"]["per_class"],
                kinds,
                out / "recall_over_k.png",
                "defect-wise recall (test split)",
            ),
        ),
    ]
    samples = {s.id: s for s in dataset.samples("test")}
    for kind, chosen in pick_examples(test, threshold, result["defect_wise"]["k"]).items():
        for s in chosen:
            pred = s.score_map >= threshold
            image = plots.overlay(samples[s.id].image(), pred, s.defect_mask)
            figures.append(
                (f"{kind}: {s.id}", plots.save_rgb(image, out / "examples" / f"{kind}_{s.id}.png"))
            )
    return figures


def undefined_warnings(result: dict) -> list[str]:
    """Why a pixel metric is undefined (an empty denominator: None in metrics.json, – in the
    tables) rather than a score: nothing to find, or nothing flagged."""
    pixel = result["pixel"]
    lines = []
    if undefined(pixel["recall"]):
        names = [name for name, key in RATIOS_OF_TRUTH if undefined(pixel.get(key))]
        why = "no defective image" if not result["images"]["defective"] else "no defect pixel"
        lines.append(f"{why} in the test split: pixel {_listed(names)} undefined")
    if undefined(pixel["precision"]):
        lines.append("the threshold flags no pixel of the test split: pixel precision is undefined")
    return lines


def _listed(names: list[str]) -> str:
    """`recall is`, `recall and F1 are`, `recall, F1 and IoU are`."""
    if len(names) == 1:
        return f"{names[0]} is"
    return f"{', '.join(names[:-1])} and {names[-1]} are"


def operating_point_warnings(result: dict) -> list[str]:
    """Plain-language warnings about the chosen threshold, shown above the headline numbers."""
    flagged = result["image"]["good_flagged_rate"]
    if not flagged > MOST_GOOD_FLAGGED:  # also NaN: no good test images
        return []
    line = (
        f"the threshold {result['threshold']:.4g} ({result['threshold_source']}) flags "
        f"{flagged:.0%} of the good test images, so every recall below is inflated"
    )
    other = result.get("model_threshold")
    if other is not None:
        line += (
            f"; at the model's own threshold {other['threshold']:.4g} (set on held-out good images) "
            f"{other['image']['good_flagged_rate']:.0%} are flagged and the mean defect recall is "
            f"{fmt(other['defect_wise']['mean_defect_recall'])}"
        )
    return [line]


def pick_examples(test: Sequence[Scored], threshold: float, k: float = 0.0) -> dict[str, list[Scored]]:
    """Images for the report, each under one caption: "missed" when a defect instance is not
    found (the defect-wise rule at coverage k), "found" when all its defects are, and
    "false_alarm" for a good image that the threshold flags."""
    by: dict[str, list[tuple[float, Scored]]] = {"found": [], "missed": [], "false_alarm": []}
    for s in test:
        pred = s.score_map >= threshold
        if s.defective:
            coverage = m.instance_coverage(pred, s.instance_map)
            missed = [i for i in s.defect_ids if not m.is_found(coverage.get(i, 0.0), k)]
            area = (
                float(np.isin(s.instance_map, missed).sum())
                if missed
                else float((pred & s.defect_mask).sum())
            )
            by["missed" if missed else "found"].append((area, s))
        elif s.score >= threshold:
            by["false_alarm"].append((float(pred.sum()), s))
    return {
        kind: [s for _, s in sorted(chosen, key=lambda x: -x[0])[:EXAMPLES_PER_KIND]]
        for kind, chosen in by.items()
    }


def summary_rows(result: dict) -> tuple[list[str], list[list]]:
    """The headline numbers of one evaluation as a two-column table."""
    rows = [
        ["threshold", result["threshold"]],
        ["pixel precision", result["pixel"]["precision"]],
        ["pixel recall", result["pixel"]["recall"]],
        ["pixel F1", result["pixel"]["f1"]],
        ["pixel AUROC", result["pixel"]["auroc"]],
        ["AUPRO (FPR <= 0.3)", result["pixel"]["aupro"]],
        ["image AUROC", result["image"]["auroc"]],
        ["good images flagged", result["image"]["good_flagged_rate"]],
        [
            f"mean defect-wise recall (k={result['defect_wise']['k']}%)",
            result["defect_wise"]["mean_defect_recall"],
        ],
    ]
    rows += [[f"recall: {n}", r] for n, r in result["defect_wise"]["per_class"].items()]
    rows += [[f"impurity recall (lower is better): {n}", r] for n, r in result["impurity_recall"].items()]
    other = result.get("model_threshold")
    if other is None:
        return ["metric", "value"], rows
    _, other_rows = summary_rows(other)
    header = ["metric", "value (chosen threshold)", "value (model's own threshold)"]
    return header, [[*row, theirs[1]] for row, theirs in zip(rows, other_rows, strict=True)]


def _warning(line: str) -> str:
    return f"Warning: {line}."


def report_sections(result: dict, out: Path, title: str) -> list[Section]:
    """HTML sections of one evaluation: its numbers, curves and overlay examples."""
    figures = [(name, out / rel) for name, rel in result["figures"].items()]
    legend = "Overlays: green = defect pixels found, red = missed, yellow = false alarms."
    return [
        Section(
            title,
            text=" ".join(
                [f"threshold: {result['threshold_source']}.", *map(_warning, result.get("warnings", []))]
            ),
            table=summary_rows(result),
        ),
        Section(f"{title}: curves", images=[f for f in figures if "examples" not in str(f[1])]),
        Section(f"{title}: examples", text=legend, images=[f for f in figures if "examples" in str(f[1])]),
    ]


def evaluation_options(model: str, stem: str) -> Callable:
    """The options every `evaluate <model>` command shares: data, output folder, k, device."""
    options = [
        click.option(
            "--data",
            required=True,
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="Canonical dataset: threshold on its val split, metrics on its test split.",
        ),
        click.option(
            "--out",
            type=OutputPath(folder=True),
            default=None,
            help=f"Output folder [runs/{model}/<{stem} stem>].",
        ),
        click.option(
            "--k",
            default=0.0,
            show_default=True,
            type=Finite(0, 100),
            help="Coverage (%) an instance needs to count as found; 0 = one pixel.",
        ),
        device_option,
    ]

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def print_report(result: dict, sections: list[Section], out: Path, title: str) -> None:
    """Write the HTML report, print the headline table and any warning."""
    html = write_html(out / "report.html", title, sections)
    header, rows = sections[0].table
    click.echo(markdown_table(header, rows))
    for line in result.get("warnings", []):
        click.echo(_warning(line), err=True)
    click.echo(f"wrote {out / 'metrics.json'} and {html}")


@click.command("anomaly")
@click.option("--coreset", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@evaluation_options("anomaly", "coreset")
@click.option(
    "--burst",
    help="Light set-up of a burst dataset, or max, mean, channels [the coreset's own, else the image].",
)
def anomaly(coreset: Path, data: Path, out: Path | None, k: float, device: str, burst: str | None) -> None:
    """Evaluate a PatchCore coreset: metrics JSON, plots, overlays and an HTML report."""
    from train.patchcore import Coreset

    model = Coreset.load(coreset, device=device)
    out = out or default_out("anomaly", coreset.stem)
    view = burst or model.config.burst
    result = evaluate_predictor(model.predict, data, out, model.threshold, k, view=view)
    print_report(result, report_sections(result, out, "test split"), out, f"{coreset.name} on {data}")
