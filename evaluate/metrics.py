"""Evaluation metrics (pixel, defect-wise, image, AUPRO, detection) as plain functions over numpy arrays.

Conventions:
- a ratio whose denominator is empty is undefined (NaN; None in JSON, – in tables), never 1:
  precision with no predicted pixel, recall with nothing to find; F-scores use the count form
  (1+b²)tp / ((1+b²)tp + b²fn + fp), undefined when tp = fp = fn = 0, and 0 for false alarms
  where there is nothing to find;
- scores predict "anomalous" when score >= threshold;
- AUROC averages over ties in the scores exactly as sklearn's roc_auc_score does
  (Mann-Whitney U with mid-ranks); it is NaN when one of the two classes is absent.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from synth.annotations import Annotations, Instance, Prediction

# Coverage levels (percent of an instance's pixels) of the defect-wise recall curve.
COVERAGE_LEVELS: tuple[int, ...] = tuple(range(0, 101, 5))


@dataclass(frozen=True)
class Counts:
    """Confusion counts of a binary prediction."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn)

    def f_beta(self, beta: float = 1.0) -> float:
        b2 = beta * beta
        return _ratio((1 + b2) * self.tp, (1 + b2) * self.tp + b2 * self.fn + self.fp)

    @property
    def f1(self) -> float:
        return self.f_beta(1.0)


def iou_from_f1(f1: float) -> float:
    """Pixel IoU (Jaccard) tp / (tp + fp + fn) of the counts whose F1 is `f1`: IoU = F1 / (2 - F1),
    so a report that has the F1 needs no second pass over the pixels."""
    return float(f1) / (2.0 - float(f1))


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def confusion(pred: np.ndarray, truth: np.ndarray) -> Counts:
    """Confusion counts of two boolean arrays of the same shape."""
    pred, truth = _same_shape_bool(pred, truth)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return Counts(tp, fp, fn, pred.size - tp - fp - fn)


def _same_shape_bool(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: prediction {a.shape} vs truth {b.shape}")
    return a.astype(bool), b.astype(bool)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; ties count one half (identical to sklearn's roc_auc_score)."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata  # imported on use: it costs a command line 0.5 s to start

    ranks = rankdata(scores, method="average")
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _descending_cumulative(
    scores: np.ndarray, weights: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Distinct thresholds (descending) and, per weight array, its sum over score >= threshold."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    sums = [np.cumsum(w[order], dtype=np.float64)[last_of_tie] for w in weights]
    return s[last_of_tie], sums


@dataclass(frozen=True)
class ThresholdCurves:
    """Metrics of the prediction score >= threshold, for each threshold (ascending)."""

    thresholds: np.ndarray
    accuracy: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    f2: np.ndarray


def threshold_curves(truth: np.ndarray, scores: np.ndarray, n_max: int = 512) -> ThresholdCurves:
    """Accuracy, precision, recall, F1 and F2 against the threshold.

    Every distinct score is a candidate; when there are more than n_max, an evenly spaced
    subset by rank is kept (the curve is for plotting; `best_f1_threshold` is exact).
    """
    truth = np.asarray(truth).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    thr, (tp, fp) = _descending_cumulative(scores, [truth.astype(np.float64), (~truth) * 1.0])
    thr, tp, fp = thr[::-1], tp[::-1], fp[::-1]
    if thr.size > n_max:
        keep = np.unique(np.linspace(0, thr.size - 1, n_max).round().astype(int))
        thr, tp, fp = thr[keep], tp[keep], fp[keep]
    n_pos = float(truth.sum())
    n_neg = truth.size - n_pos
    fn, tn = n_pos - tp, n_neg - fp
    div = np.vectorize(_ratio, otypes=[np.float64])
    return ThresholdCurves(
        thresholds=thr,
        accuracy=div(tp + tn, float(truth.size)),
        precision=div(tp, tp + fp),
        recall=div(tp, n_pos),
        f1=div(2 * tp, 2 * tp + fn + fp),
        f2=div(5 * tp, 5 * tp + 4 * fn + fp),
    )


def best_f1_threshold(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(threshold, F1): the threshold with the highest F1 of score >= threshold (the lowest
    one on ties). The one threshold rule of defectsynth, for evaluation and calibration alike.

    Chosen on a validation split; if it holds no positive at all, the threshold is placed
    just above the highest score (`above_all`), so that nothing in it would be flagged.
    """
    truth = np.asarray(truth).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("cannot choose a threshold from no scores")
    n_pos = float(truth.sum())
    if n_pos == 0:
        return above_all(scores), 0.0
    thr, (tp, fp) = _descending_cumulative(scores, [truth * 1.0, (~truth) * 1.0])
    f1 = 2 * tp / (tp + fp + n_pos)
    best = np.flatnonzero(f1 == f1.max())[-1]
    return float(thr[best]), float(f1[best])


def above_all(scores: Sequence[float] | np.ndarray) -> float:
    """The lowest threshold that flags none of `scores` (score >= threshold is anomalous)."""
    return float(np.nextafter(np.max(scores), np.inf))


def aupro(
    truth_masks: Sequence[np.ndarray], score_maps: Sequence[np.ndarray], fpr_limit: float = 0.3
) -> float:
    """Normalised area under the per-region-overlap curve up to a false positive rate.

    Takes one (H, W) mask and score map per image (sizes may differ between images).
    Regions are 8-connected components of each image's defect mask. Every pixel of a
    region weighs 1 / (regions × region size), so each region counts equally; the FPR is
    over all defect-free pixels. The curve is integrated (trapezoids, interpolated at
    `fpr_limit`) and divided by `fpr_limit`, as in the MVTec AD reference code. NaN when
    there is no region or no defect-free pixel.
    """
    from scipy.ndimage import label

    if len(truth_masks) != len(score_maps):
        raise ValueError(f"{len(truth_masks)} masks but {len(score_maps)} score maps")
    negatives, weights, scores = [], [], []
    n_regions = 0
    for mask, smap in zip(truth_masks, score_maps, strict=True):
        mask, _ = _same_shape_bool(mask, smap)
        labels, n = label(mask, structure=np.ones((3, 3), dtype=int))
        sizes = np.bincount(labels.ravel()).astype(np.float64)
        sizes[0] = np.inf  # background pixels weigh nothing
        weights.append(1.0 / sizes[labels.ravel()])
        negatives.append(~mask.ravel())
        scores.append(np.asarray(smap, np.float64).ravel())
        n_regions += n
    negative = np.concatenate(negatives) if negatives else np.zeros(0, bool)
    n_neg = int(negative.sum())
    if n_regions == 0 or n_neg == 0:
        return float("nan")
    _, (fpr, pro) = _descending_cumulative(
        np.concatenate(scores), [negative / n_neg, np.concatenate(weights) / n_regions]
    )
    fpr, pro = np.r_[0.0, fpr], np.r_[0.0, pro]
    if fpr[-1] > fpr_limit:
        cut = int(np.searchsorted(fpr, fpr_limit, side="right"))
        pro_at_limit = np.interp(fpr_limit, fpr[cut - 1 : cut + 1], pro[cut - 1 : cut + 1])
        fpr, pro = np.r_[fpr[:cut], fpr_limit], np.r_[pro[:cut], pro_at_limit]
    return float(np.trapz(pro, fpr) / fpr_limit)


def instance_coverage(pred: np.ndarray, instance_map: np.ndarray) -> dict[int, float]:
    """Fraction of each labelled instance's pixels that the prediction marks anomalous."""
    pred, _ = _same_shape_bool(pred, instance_map)
    ids = np.asarray(instance_map).astype(np.int64)
    area = np.bincount(ids.ravel())
    hit = np.bincount(ids.ravel(), weights=pred.ravel().astype(np.float64), minlength=area.size)
    return {int(i): float(hit[i] / area[i]) for i in np.flatnonzero(area) if i != 0}


def is_found(coverage: float, k: float) -> bool:
    """An instance is found when >= k% of its pixels are flagged; k = 0 means one pixel."""
    return coverage > 0 and coverage >= k / 100.0


def defect_wise_recall(coverages: Sequence[tuple[str, float]], k: float = 0.0) -> dict[str, float]:
    """Per class, the fraction of its instances found at coverage level k (percent).

    `coverages` lists (class name, coverage) for every labelled instance of the test set.
    The same number for an impurity class is the rate of false alarms on it.
    """
    found: dict[str, list[bool]] = {}
    for name, cov in coverages:
        found.setdefault(name, []).append(is_found(cov, k))
    return {name: float(np.mean(hits)) for name, hits in sorted(found.items())}


def defect_wise_recall_curve(
    coverages: Sequence[tuple[str, float]], levels: Sequence[int] = COVERAGE_LEVELS
) -> dict[str, list[float]]:
    """Per class, the defect-wise recall at each coverage level in `levels`."""
    per_level = [defect_wise_recall(coverages, k) for k in levels]
    names = sorted({name for name, _ in coverages})
    return {name: [row[name] for row in per_level] for name in names}


def mean_over(recalls: Mapping[str, float], names: Sequence[str]) -> float:
    """Mean of the recalls of the given classes that occur (NaN if none does)."""
    values = [recalls[n] for n in names if n in recalls]
    return float(np.mean(values)) if values else float("nan")


# ---------------------------------------------------------------- detectors


# Per evaluated image (every one, also those without truths or predictions): its labelled
# instances, and the predictions for it.
Truths = Mapping[str, Sequence[Instance]]
Predictions = Mapping[str, Sequence[Prediction]]
XYXY = tuple[float, float, float, float]


def _area(box: XYXY) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_iou(a: XYXY, b: XYXY) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 when both are empty)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, ix) * max(0.0, iy)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def match_detections(
    truths: Sequence[Instance], preds: Sequence[Prediction], iou: float = 0.5
) -> tuple[set[int], set[int]]:
    """Greedy matching of one image's predictions by descending score within class (the COCO
    rule). Returns the indices of matched truths and of matched predictions."""
    matched_t: set[int] = set()
    matched_p: set[int] = set()
    for pi in sorted(range(len(preds)), key=lambda i: -preds[i].score):
        p = preds[pi]
        best, best_iou = -1, iou
        for ti, t in enumerate(truths):
            if ti in matched_t or t.class_id != p.class_id:
                continue
            v = box_iou(t.xyxy, p.box)
            if v >= best_iou:
                best, best_iou = ti, v
        if best >= 0:
            matched_t.add(best)
            matched_p.add(pi)
    return matched_t, matched_p


def found_instances(truths: Truths, preds: Predictions, conf: float) -> dict[str, set[int]]:
    """Per image, the indices of its truths matched by a prediction at >= conf."""
    return {
        image: match_detections(ts, [p for p in preds.get(image, ()) if p.score >= conf])[0]
        for image, ts in truths.items()
    }


def detection_metrics(
    truths: Truths,
    preds: Predictions,
    class_names: Mapping[int, str],
    good_images: Collection[str],
    conf: float = 0.25,
    impurity_classes: Collection[int] = (),
    masks: Mapping[str, Annotations] | None = None,
) -> dict:
    """COCO mAP50 / mAP50-95 / AP by size, plus recall, miss rate and false alarms at `conf`.

    `truths` has every evaluated image; `good_images` are the defect-free ones, whose every
    defect-class prediction at >= conf is a false alarm; a prediction of one of
    `impurity_classes` (a water stain found on a good image) is not. With `masks` (every image's
    Annotations, whose instance ids the truths carry), the same figures for the masks
    (`mask_map50`, ...: COCO segm AP from the exact instance masks against predicted masks).

    A model that predicts nothing scores AP 0 and recall 0; images without any instance give
    AP NaN (nothing to find). No evaluated image, or predictions for an image not evaluated (a
    key mismatch that would drop them unseen), is a mistake of the caller and raises.
    """
    if not truths:
        raise ValueError("detection metrics of no image: `truths` must list every evaluated image")
    unknown = sorted(set(preds) - set(truths))
    if unknown:
        raise ValueError(f"predictions for {len(unknown)} image(s) not evaluated, e.g. {unknown[:3]}")
    ap = _coco_ap(truths, preds, class_names)
    if masks is not None:
        ap |= {f"mask_{k}": v for k, v in _coco_ap(truths, preds, class_names, masks).items()}
    found = found_instances(truths, preds, conf)
    per_class = {}
    for cid, name in sorted(class_names.items()):
        hits = [
            i in found[image] for image, ts in truths.items() for i, t in enumerate(ts) if t.class_id == cid
        ]
        if hits:
            recall = sum(hits) / len(hits)
            per_class[name] = {"instances": len(hits), "recall": recall, "miss_rate": 1 - recall}
    alarms = [
        (image, p)
        for image in good_images
        for p in preds.get(image, ())
        if p.score >= conf and p.class_id not in impurity_classes
    ]
    return {
        **ap,
        "conf": conf,
        "per_class": per_class,
        "good_images": len(good_images),
        "false_alarms_on_good": len(alarms),
        "good_images_with_false_alarm": len({image for image, _ in alarms}),
    }


def _prediction_rle(prediction: Prediction, size: tuple[int, int]) -> dict:
    """A predicted mask crop placed into an image of `size` (h, w), as COCO RLE."""
    from pycocotools import mask as coco_mask

    full = np.zeros(size, np.uint8, order="F")
    x, y = prediction.mask_origin
    crop = prediction.mask[: max(size[0] - y, 0), : max(size[1] - x, 0)]
    full[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    rle = coco_mask.encode(full)
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def _image_size(masks: Mapping[str, Annotations] | None, image: str) -> dict[str, int]:
    """An image's height and width, which pycocotools reads before it reads any mask."""
    if masks is None:
        return {}
    height, width = masks[image].size
    return {"height": height, "width": width}


def _coco_ap(
    truths: Truths,
    preds: Predictions,
    class_names: Mapping[int, str],
    masks: Mapping[str, Annotations] | None = None,
) -> dict[str, float]:
    """mAP50, mAP50-95 and AP of small / medium / large instances from pycocotools: of boxes,
    or, with `masks`, of masks (segm; predictions without a mask are left out)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    keys = ("map50_95", "map50", "map75", "ap_small", "ap_medium", "ap_large")
    if not any(truths.values()):
        return dict.fromkeys(keys, float("nan"))
    if not any(preds.values()):
        return dict.fromkeys(keys, 0.0)
    image_ids = {name: i + 1 for i, name in enumerate(truths)}

    def entry(image: str, class_id: int, box: XYXY) -> dict:
        x0, y0, x1, y1 = box
        return {"image_id": image_ids[image], "category_id": class_id, "bbox": [x0, y0, x1 - x0, y1 - y0]}

    def truth(image: str, t: Instance) -> dict:
        if masks is None:
            return {**entry(image, t.class_id, t.xyxy), "area": _area(t.xyxy), "iscrowd": 0}
        rle = masks[image].coco_rle(t)
        return {**entry(image, t.class_id, t.xyxy), "segmentation": rle, "area": t.area_px, "iscrowd": 0}

    def detection(image: str, p: Prediction) -> dict:
        if masks is None:
            return {**entry(image, p.class_id, p.box), "score": p.score}
        # no bbox: pycocotools then takes the area (for the size ranges) from the mask
        return {
            "image_id": image_ids[image],
            "category_id": p.class_id,
            "segmentation": _prediction_rle(p, masks[image].size),
            "score": p.score,
        }

    annotations = [truth(image, t) for image, ts in truths.items() for t in ts]
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, **_image_size(masks, image)} for image, i in image_ids.items()],
        "categories": [{"id": c, "name": n} for c, n in class_names.items()],
        "annotations": [{**a, "id": j + 1} for j, a in enumerate(annotations)],
    }
    detections = [
        detection(image, p) for image, ps in preds.items() for p in ps if masks is None or p.mask is not None
    ]
    if not detections:  # only masks were asked for, and no prediction has one
        return dict.fromkeys(keys, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox" if masks is None else "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCO marks "no instance of this size" with -1; report that as NaN.
    stats6 = ev.stats[:6]
    return {k: float(v) if v >= 0 else float("nan") for k, v in zip(keys, stats6, strict=True)}
