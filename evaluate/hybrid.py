"""`evaluate hybrid`: two-stage inspection. A PatchCore anomaly map, thresholded at the operating
point of `evaluate anomaly`, proposes connected regions; a crop classifier (train/classifier)
names each region's defect class or dismisses it as "not a defect" (an impurity such as a water
stain, or plain surface).

Both systems are scored on the test split by the same rules: a labelled instance is found when
the kept regions cover at least k% of its pixels (k = 0: one pixel; for PatchCore alone this is
exactly `evaluate anomaly`'s defect-wise recall); a region is a true detection when it touches a
defect pixel, and a false alarm otherwise; a good image is flagged when any region is kept on it.
With `--segmenter`, a supervised segmenter (train/segment) alone is scored by the same rules: the
regions of its probability map at its own max pixel-F1 threshold on val (`evaluate segment`'s).
With `--detector`, YOLO or Mask R-CNN weights alone: the regions its detections cover (masks, or
boxes for a box detector) at a working confidence, `evaluate detector`'s `--conf`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click
import cv2
import numpy as np

from evaluate import anomaly
from evaluate import metrics as m
from evaluate.detector import WORKING_CONF, load_detector, predict_with
from evaluate.plots import save_rgb
from evaluate.predict import describe, draw_overlay
from evaluate.report import Section
from evaluate.severity import load_severity
from synth.annotations import Prediction, predictions_from_map
from synth.dataset import Dataset, require_classes
from synth.errors import DataError
from synth.runs import default_out
from synth.writers import atomic_write_json
from train.options import Finite

DEFAULT_REJECT = 0.5  # dismiss a region when "not a defect" is at least this probable
EXAMPLES = 8


def paint(regions: Sequence[Prediction], size: tuple[int, int]) -> np.ndarray:
    """The union of the regions' masks as one boolean (h, w) mask."""
    out = np.zeros(size, bool)
    for r in regions:
        x, y = r.mask_origin
        out[y : y + r.mask.shape[0], x : x + r.mask.shape[1]] |= r.mask
    return out


@dataclass(frozen=True)
class Inspected:
    """One test image: its scores and labels, the proposed regions and, per region, the
    classifier's probabilities (regions x classes)."""

    scored: anomaly.Scored
    regions: list[Prediction]
    probabilities: np.ndarray

    def named(self, reject: float) -> list[Prediction]:
        """The regions with the classifier's verdict as class and score: "not a defect" (class
        0) when its probability is at least `reject`, else the most probable defect class
        (index into the classifier's classes); the score is that class's probability."""
        named = []
        for region, p in zip(self.regions, self.probabilities, strict=True):
            verdict = 0 if p[0] >= reject else 1 + int(np.argmax(p[1:]))
            named.append(Prediction(region.box, float(p[verdict]), verdict, region.mask, region.mask_origin))
        return named


def inspect(scored: anomaly.Scored, image: np.ndarray, threshold: float, classifier: Any) -> Inspected:
    """Regions of one image's anomaly map, each classified on its crop of the full image."""
    regions = predictions_from_map(scored.score_map, threshold)
    return Inspected(scored, regions, classifier.classify(image, [r.box for r in regions]))


def _touches(region: Prediction, mask: np.ndarray) -> bool:
    x, y = region.mask_origin
    return bool((mask[y : y + region.mask.shape[0], x : x + region.mask.shape[1]] & region.mask).any())


def system_metrics(
    images: Sequence[anomaly.Scored], kept: Sequence[list[Prediction]], kinds: dict[str, str], k: float
) -> dict[str, Any]:
    """Recall per class (defect-wise rule at k), region precision and false alarms of one
    system, given the regions it keeps on each image."""
    coverages, true_regions, alarm_regions, on_impurities, good_flagged = [], 0, 0, 0, []
    for s, regions in zip(images, kept, strict=True):
        flagged = paint(regions, s.instance_map.shape)
        for iid, cov in m.instance_coverage(flagged, s.instance_map).items():
            coverages.append((s.instance_class[iid], cov))
        impurity = (s.instance_map > 0) & ~s.defect_mask
        for r in regions:
            if _touches(r, s.defect_mask):
                true_regions += 1
            else:
                alarm_regions += 1
                on_impurities += _touches(r, impurity)
        if not s.defective:
            good_flagged.append(bool(regions))
    recall = m.defect_wise_recall(coverages, k)
    defects = [n for n, kind in kinds.items() if kind == "defect"]
    return {
        "recall": {n: r for n, r in recall.items() if kinds.get(n) == "defect"},
        "mean_defect_recall": m.mean_over(recall, defects),
        "impurities_flagged": {n: r for n, r in recall.items() if kinds.get(n) == "impurity"},
        "regions": true_regions + alarm_regions,
        "region_precision": m.Counts(true_regions, alarm_regions, 0, 0).precision,  # none without a region
        "false_alarm_regions": alarm_regions,
        "false_alarm_regions_on_impurities": on_impurities,
        "good_images": len(good_flagged),
        "good_images_flagged": float(np.mean(good_flagged)) if good_flagged else float("nan"),
    }


def class_metrics(
    images: Sequence[Inspected], class_names: Sequence[str], kinds: dict[str, str], k: float, reject: float
) -> dict[str, dict[str, float]]:
    """Per defect class, for the hybrid: recall counting only regions named that class, and the
    precision of the regions named that class (they touch an instance of it)."""
    out = {}
    for name in (n for n, kind in kinds.items() if kind == "defect"):
        coverages, named, right = [], 0, 0
        index = class_names.index(name) if name in class_names else -1
        for item in images:
            s = item.scored
            regions = [r for r in item.named(reject) if r.class_id == index]
            ids = [iid for iid, n in s.instance_class.items() if n == name]
            truth = np.isin(s.instance_map, ids)
            flagged = paint(regions, truth.shape)
            coverages += [
                (name, c) for i, c in m.instance_coverage(flagged, s.instance_map).items() if i in ids
            ]
            named += len(regions)
            right += sum(_touches(r, truth) for r in regions)
        out[name] = {
            "recall_right_class": m.defect_wise_recall(coverages, k).get(name, float("nan")),
            "precision": m.Counts(right, named - right, 0, 0).precision,
            "regions_named": named,
        }
    return out


def map_alone(images: Sequence[anomaly.Scored], threshold: float, kinds: dict[str, str], k: float) -> dict:
    """A score map as a system of its own: every region at the threshold is kept."""
    return system_metrics(images, [predictions_from_map(s.score_map, threshold) for s in images], kinds, k)


def kept_regions(images: Sequence[Inspected], reject: float) -> list[list[Prediction]]:
    """Per image, the regions the hybrid keeps (those not dismissed as not a defect)."""
    return [[r for r in item.named(reject) if r.class_id != 0] for item in images]


def hybrid_metrics(
    images: Sequence[Inspected], class_names: Sequence[str], kinds: dict[str, str], k: float, reject: float
) -> dict[str, Any]:
    """PatchCore alone (every region) beside the hybrid (regions not dismissed)."""
    scored = [item.scored for item in images]
    return {
        "patchcore": system_metrics(scored, [item.regions for item in images], kinds, k),
        "hybrid": {
            **system_metrics(scored, kept_regions(images, reject), kinds, k),
            "per_class": class_metrics(images, class_names, kinds, k, reject),
        },
    }


def choose_reject(val: Sequence[Inspected], kinds: dict[str, str], k: float) -> tuple[float, str]:
    """The level of "not a defect" at which regions are dismissed: the classifier's own verdict
    (`DEFAULT_REJECT`) unless that loses, on the val split, a defect PatchCore alone finds there
    (its per-class defect-wise recall); then the lowest level above it that keeps them all.

    The val split only ever raises the level, to protect recall: a handful of val defects that
    the classifier happens to be sure of would otherwise license dismissing almost every region
    (a level of 0.002 on 23 val renders took test recall from 0.29 to 0.08). Recall only grows
    with the level, so a binary search over the val regions' own values finds it."""
    scored = [item.scored for item in val]
    wanted = system_metrics(scored, [item.regions for item in val], kinds, k)["recall"]
    if not any(wanted.values()):
        return DEFAULT_REJECT, f"{DEFAULT_REJECT} (PatchCore alone finds no val defect to keep)"

    def keeps(level: float) -> bool:
        return system_metrics(scored, kept_regions(val, level), kinds, k)["recall"] == wanted

    if keeps(DEFAULT_REJECT):
        return (
            DEFAULT_REJECT,
            f"{DEFAULT_REJECT}, the classifier's verdict (it keeps every val defect PatchCore finds)",
        )
    values = {float(np.nextafter(p[0], np.inf)) for item in val for p in item.probabilities}
    levels = sorted(v for v in values if v > DEFAULT_REJECT)  # the last level dismisses nothing
    low, high = 0, len(levels) - 1
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if keeps(levels[middle]) else (middle + 1, high)
    return levels[low], f"the lowest above {DEFAULT_REJECT} that keeps every val defect PatchCore alone finds"


def _cell(system: dict[str, Any], *keys: str) -> Any:
    """system[keys[0]][keys[1]]..., or NaN (shown as –) where the system has no such figure."""
    for key in keys:
        if key not in system:
            return float("nan")
        system = system[key]
    return system


def table(result: dict[str, Any]) -> tuple[list[str], list[list]]:
    """The one table: a row per figure, a column per system (– where it does not apply)."""
    systems = {"PatchCore alone": result["patchcore"]}
    if "segmenter" in result:
        systems["segmenter alone"] = result["segmenter"]
    if "detector" in result:
        systems["detector alone"] = result["detector"]
    systems["hybrid"] = result["hybrid"]

    def row(label: str, *keys: str) -> list:
        return [label, *(_cell(system, *keys) for system in systems.values())]

    pc, per_class = result["patchcore"], result["hybrid"]["per_class"]
    rows = [row(f"mean defect-wise recall (k={result['k']}%)", "mean_defect_recall")]
    rows += [row(f"recall: {name}", "recall", name) for name in pc["recall"]]
    rows += [
        row(f"recall, right class: {name}", "per_class", name, "recall_right_class") for name in per_class
    ]
    rows += [row(f"precision: {name}", "per_class", name, "precision") for name in per_class]
    rows += [
        row("region precision (any defect class)", "region_precision"),
        row("regions", "regions"),
        row("false-alarm regions", "false_alarm_regions"),
        row("false-alarm regions on impurities", "false_alarm_regions_on_impurities"),
        row(f"good images flagged (of {pc['good_images']})", "good_images_flagged"),
    ]
    rows += [
        row(f"impurities flagged (lower is better): {name}", "impurities_flagged", name)
        for name in pc["impurities_flagged"]
    ]
    timing = result["seconds_per_image"]
    seconds = {
        "PatchCore alone": timing["patchcore"],
        "segmenter alone": timing.get("segmenter"),
        "detector alone": timing.get("detector"),
        "hybrid": timing["patchcore"] + timing["classifier"],
    }
    rows.append(["seconds per image", *(seconds[name] for name in systems)])
    return ["metric", *systems], rows


def segmenter_alone(
    segmenter: Any, dataset: Dataset, kinds: dict[str, str], k: float
) -> tuple[dict[str, Any], float]:
    """The segmenter alone on the test split: its regions at `evaluate segment`'s threshold (max
    pixel F1 on val), scored as the other systems are; and its seconds per test image."""
    val = anomaly.score_split(dataset, "val", segmenter.predict)
    threshold, source = anomaly.choose_threshold(val, None)
    started = time.perf_counter()
    test = anomaly.score_split(dataset, "test", segmenter.predict)
    seconds = (time.perf_counter() - started) / len(test)
    return {
        "threshold": threshold,
        "threshold_source": source,
        **map_alone(test, threshold, kinds, k),
    }, seconds


def detection_map(predictions: Sequence[Prediction], shape: tuple[int, int]) -> np.ndarray:
    """A detector's predictions as a score map: at each pixel the highest confidence of the
    predictions covering it (their masks, or their whole-pixel boxes where they have none)."""
    out = np.zeros(shape, np.float32)
    height, width = shape
    for p in predictions:
        if p.mask is not None:
            covered = paint([p], shape)
        else:
            x0, y0 = max(0, int(np.floor(p.box[0]))), max(0, int(np.floor(p.box[1])))
            x1, y1 = min(width, int(np.ceil(p.box[2]))), min(height, int(np.ceil(p.box[3])))
            covered = np.zeros(shape, bool)
            covered[y0:y1, x0:x1] = True
        out[covered] = np.maximum(out[covered], p.score)
    return out


def detector_alone(
    detector: Any, dataset: Dataset, kinds: dict[str, str], k: float, conf: float
) -> tuple[dict[str, Any], float]:
    """The detector alone on the test split: the regions its detections cover at confidence
    `conf`, scored as the other systems are; and its seconds per test image. `detector` maps
    samples to their predictions (`evaluate.detector.predict` and its Mask R-CNN sibling)."""
    samples = dataset.samples("test")
    started = time.perf_counter()
    predictions = detector(samples)
    seconds = (time.perf_counter() - started) / len(samples)
    test = []
    for sample in samples:
        annotations = sample.annotations(dataset.classes)
        found = predictions.get(sample.id, [])
        score = max((p.score for p in found), default=0.0)
        test.append(
            anomaly.Scored(
                sample.id, detection_map(found, annotations.instance_map.shape), score, annotations
            )
        )
    return {"conf": conf, **map_alone(test, conf, kinds, k)}, seconds


def region_records(
    item: Inspected,
    image: np.ndarray,
    class_names: Sequence[str],
    mm_per_pixel: float,
    severity: Any,
    reject: float,
) -> tuple[list[dict[str, Any]], list[Prediction]]:
    """Every region of one image as a record (class, score, box, mask outline, sizes in mm,
    severity; dismissed regions too, marked), most severe first; and the regions in that order."""
    named = item.named(reject)
    records, ordered = describe(image, named, dict(enumerate(class_names)), mm_per_pixel, severity)
    position = {id(r): i for i, r in enumerate(named)}
    for record, region in zip(records, ordered, strict=True):
        i = position[id(region)]
        record["kept"] = region.class_id != 0
        record["anomaly_score"] = round(item.regions[i].score, 4)
        record["defect_probability"] = round(float(1.0 - item.probabilities[i][0]), 4)
    return records, ordered


def evaluate_hybrid(
    coreset: Any,
    classifier: Any,
    data: Path,
    out: Path,
    k: float = 0.0,
    mm_per_pixel: float | None = None,
    threshold: float | None = None,
    reject: float | None = None,
    segmenter: Any | None = None,
    detector: Any | None = None,
    detector_conf: float = WORKING_CONF,
) -> dict[str, Any]:
    """Score the test split with both systems, and the segmenter and the detector (samples ->
    predictions) alone if given; write metrics.json, regions.json, overlays.

    The anomaly threshold is `evaluate anomaly`'s and the level of "not a defect" at which a
    region is dismissed is `choose_reject`'s, both from the val split, unless given."""
    dataset = Dataset(data)
    samples = {s.id: s for s in dataset.samples("test")}
    if not samples:
        raise DataError(f"{data}: the test split is empty")
    scales = {s.meta.get("mm_per_px") for s in samples.values()}
    if mm_per_pixel is None and None in scales:
        raise DataError(
            f"{data}: its test images record no mm per pixel (imported data?): give --mm-per-pixel"
        )
    kinds = {c.name: c.kind for c in dataset.classes}
    started = time.perf_counter()
    test = anomaly.score_split(dataset, "test", coreset.predict)
    patchcore_seconds = time.perf_counter() - started
    val = anomaly.score_split(dataset, "val", coreset.predict) if None in (threshold, reject) else []
    threshold_source, reject_source = "given with --threshold", "given with --reject"
    if threshold is None:
        threshold, threshold_source = anomaly.choose_threshold(val, coreset.threshold)
    if reject is None:
        val_samples = {s.id: s for s in dataset.samples("val")}
        val_inspected = [inspect(s, val_samples[s.id].image(), threshold, classifier) for s in val]
        reject, reject_source = choose_reject(val_inspected, kinds, k)
    images = {s.id: samples[s.id].image() for s in test}
    started = time.perf_counter()
    inspected = [inspect(s, images[s.id], threshold, classifier) for s in test]
    classifier_seconds = time.perf_counter() - started
    result = {
        "data": str(data),
        "threshold": threshold,
        "threshold_source": threshold_source,
        "reject": reject,
        "reject_source": reject_source,
        "k": k,
        "classes": classifier.class_names,
        **hybrid_metrics(inspected, classifier.class_names, kinds, k, reject),
        "seconds_per_image": {
            "patchcore": patchcore_seconds / len(test),
            "classifier": classifier_seconds / len(test),
        },
    }
    if segmenter is not None:
        result["segmenter"], result["seconds_per_image"]["segmenter"] = segmenter_alone(
            segmenter, dataset, kinds, k
        )
    if detector is not None:
        result["detector"], result["seconds_per_image"]["detector"] = detector_alone(
            detector, dataset, kinds, k, detector_conf
        )
    severity = load_severity()
    regions, shown = {}, {"defective": [], "false_alarm": []}
    for item in inspected:
        scale = mm_per_pixel or samples[item.scored.id].meta["mm_per_px"]
        image = images[item.scored.id]
        records, ordered = region_records(item, image, classifier.class_names, scale, severity, reject)
        regions[item.scored.id] = {"mm_per_pixel": scale, "regions": records}
        kept = [(r, d) for r, d in zip(records, ordered, strict=True) if r["kept"]]
        kind = "defective" if item.scored.defective else "false_alarm"
        if kept or item.scored.defective:
            shown[kind].append((len(kept), item, kept))
    atomic_write_json(out / "regions.json", regions)
    result["examples"] = []
    for kind, chosen in shown.items():
        for _, item, kept in sorted(chosen, key=lambda c: -c[0])[: EXAMPLES // 2]:
            picture = draw_overlay(images[item.scored.id], [r for r, _ in kept], [d for _, d in kept])
            truth = item.scored.defect_mask.astype(np.uint8)
            contours, _ = cv2.findContours(truth, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(picture, contours, -1, (0, 255, 0), 1)
            path = save_rgb(picture, out / "examples" / f"{kind}_{item.scored.id}.png")
            result["examples"].append(str(path.relative_to(out)))
    atomic_write_json(out / "metrics.json", result)
    return result


def report_sections(result: dict[str, Any], out: Path) -> list[Section]:
    segmenter, detector = result.get("segmenter"), result.get("detector")
    alone = (
        f" Segmenter threshold {segmenter['threshold']:.4g}: {segmenter['threshold_source']}."
        if segmenter
        else ""
    )
    alone += f" Detector confidence {detector['conf']:.4g}." if detector else ""
    legend = (
        "Kept regions boxed with the classifier's class, probability and severity; labelled "
        "defects outlined in green. Dismissed regions are listed in regions.json."
    )
    return [
        Section(
            "PatchCore alone and the hybrid (test split)",
            text=(
                f"anomaly threshold {result['threshold']:.4g}: {result['threshold_source']}; a region "
                f"is dismissed when not a defect has probability >= {result['reject']:.4g}: "
                f"{result['reject_source']}.{alone}"
            ),
            table=table(result),
        ),
        Section("examples", text=legend, images=[(Path(p).stem, out / p) for p in result["examples"]]),
    ]


@click.command("hybrid")
@click.option("--coreset", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--classifier",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Crop classifier (train pretrain|finetune classifier).",
)
@click.option(
    "--mm-per-pixel",
    type=Finite(min=0, min_open=True),
    help="Scale for the sizes and severities [each image's own, recorded in its meta].",
)
@click.option(
    "--threshold",
    type=Finite(),
    help="Anomaly threshold [evaluate anomaly's: max pixel F1 on val, else the coreset's].",
)
@click.option(
    "--reject",
    type=Finite(0, 1),
    help="Dismiss a region when 'not a defect' is at least this probable "
    "[0.5, the classifier's verdict, raised where needed to keep every val defect PatchCore finds].",
)
@click.option(
    "--segmenter",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Supervised segmenter (train pretrain segment) to score alone by the same region rules, "
    "at its max pixel-F1 threshold on val.",
)
@click.option(
    "--detector",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YOLO or Mask R-CNN weights to score alone by the same region rules: the pixels its "
    "detections cover (masks, else boxes).",
)
@click.option(
    "--detector-conf",
    default=WORKING_CONF,
    show_default=True,
    type=Finite(0, 1),
    help="The detector's working confidence (evaluate detector's --conf).",
)
@anomaly.evaluation_options("hybrid", "classifier")
def hybrid(
    coreset: Path,
    classifier: Path,
    mm_per_pixel: float | None,
    threshold: float | None,
    reject: float | None,
    segmenter: Path | None,
    detector: Path | None,
    detector_conf: float,
    data: Path,
    out: Path | None,
    k: float,
    device: str,
) -> None:
    """Two-stage inspection: PatchCore regions, each named or dismissed by a crop classifier;
    one table of both systems (and the segmenter and the detector alone), regions.json, overlays
    and an HTML report."""
    from train.classifier.data import class_names
    from train.classifier.model import CropClassifier
    from train.patchcore import Coreset
    from train.segment.model import Segmenter

    model = Coreset.load(coreset, device=device)
    crops = CropClassifier.load(classifier, device=device)
    require_classes((classifier, crops.class_names[1:]), (data, class_names([data])[1:]), subset=True)
    alone = Segmenter.load(segmenter, device=device) if segmenter else None
    out = out or default_out("hybrid", classifier.stem)
    detect = None
    if detector is not None:
        found, kind, _ = load_detector(detector, data, out, device)
        detect = partial(predict_with, found, kind)
    result = evaluate_hybrid(
        model, crops, data, out, k, mm_per_pixel, threshold, reject, alone, detect, detector_conf
    )
    anomaly.print_report(
        result, report_sections(result, out), out, f"{coreset.name} + {classifier.name} on {data}"
    )
