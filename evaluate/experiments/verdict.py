"""Did synthetic data help? One line per synthetic scenario and real budget, for each model kind.

Each synthetic scenario is set against `real_only` (the scenarios that train on real data only)
at the same real budget, and each scenario of renders against its Perlin counterpart (the 2D
baseline, the same `train`) at the same budget, on the kind's headline metric: box mAP50 for the
detectors, pixel F1 for the segmenter and for PatchCore (the metric every threshold is chosen by).
`judge` is the rule: the seeds' min–max ranges must not overlap for either side to be called better.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from evaluate.report import undefined

RULE = (
    "Each synthetic scenario against real_only at the same real budget (and each scenario of renders "
    "against the Perlin one of the same training at that budget), on the headline metric over seeds: "
    "helped or hurt when the two min–max ranges do not overlap, no measurable difference when they "
    "do; fewer than 2 seeds on either side or an undefined value are not judged."
)

HEADLINES: dict[str, tuple[str, Callable[[dict], float | None]]] = {
    "patchcore": ("pixel F1", lambda r: r["pixel"]["f1"]),
    "yolo": ("box mAP50", lambda r: r["map50"]),
    "maskrcnn": ("box mAP50", lambda r: r["map50"]),
    "segment": ("pixel F1", lambda r: r["pixel"]["f1"]),
}
TITLES = {"patchcore": "PatchCore", "yolo": "YOLO", "maskrcnn": "Mask R-CNN", "segment": "Segmenter"}

Outcome = Literal["better", "worse", "overlap", "one seed", "undefined"]


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    mean: float | None  # of the scenario's seeds (None when not judged)
    against_mean: float | None
    gap: float | None  # distance between the two ranges when they do not overlap


def judge(values: Sequence[float | None], against: Sequence[float | None]) -> Judgement:
    """The rule: `values` better (or worse) than `against` when every seed of one is above every
    seed of the other; ranges that overlap or touch are no measurable difference."""
    if any(undefined(v) for v in [*values, *against]):
        return Judgement("undefined", None, None, None)
    if len(values) < 2 or len(against) < 2:
        return Judgement("one seed", None, None, None)
    mean, against_mean = float(np.mean(values)), float(np.mean(against))
    if min(values) > max(against):
        return Judgement("better", mean, against_mean, min(values) - max(against))
    if max(values) < min(against):
        return Judgement("worse", mean, against_mean, min(against) - max(values))
    return Judgement("overlap", mean, against_mean, None)


def phrase(judgement: Judgement, metric: str, better: str, worse: str) -> str:
    """The judgement in words, e.g. `helped: +0.31 box mAP50 (0.82 vs 0.51), seed ranges apart by
    0.14`; `better` and `worse` name the two outcomes that are apart."""
    if judgement.outcome == "undefined":
        return "an undefined value (–): not enough to judge"
    if judgement.outcome == "one seed":
        return "one seed: not enough to judge"
    if judgement.outcome == "overlap":
        return "no measurable difference (ranges overlap)"
    assert judgement.mean is not None and judgement.against_mean is not None and judgement.gap is not None
    word = better if judgement.outcome == "better" else worse
    return (
        f"{word} {judgement.mean - judgement.against_mean:+.2f} {metric} "
        f"({judgement.mean:.2f} vs {judgement.against_mean:.2f}), seed ranges apart by {judgement.gap:.2f}"
    )


def _groups(results: list[dict]) -> dict[tuple[str, object], list[dict]]:
    """The cells of each (scenario, budget): one per seed."""
    groups: dict[tuple[str, object], list[dict]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["budget"]), []).append(r)
    return groups


def _budget_label(kind: str, cells: list[dict]) -> str:
    if kind == "patchcore":
        return f"{cells[0]['real_good_images']} real good imgs"
    return f"{cells[0]['real_defect_images']} real defect imgs"


def verdicts(kind: str, results: list[dict]) -> list[dict]:
    """The verdicts of one model kind's cells (each with `scenario`, `budget`, `train` and
    `source`): every synthetic scenario against each real-only one at its budget (one without
    real data against every budget), and each renders scenario against each Perlin one of the same
    training at the same budget."""
    metric, value = HEADLINES[kind]
    groups = _groups(results)
    pairs: list[tuple[tuple, tuple, str, str]] = []
    for (scenario, budget), cells in groups.items():
        train, source = cells[0]["train"], cells[0].get("source", "renders")
        if train == "real":
            continue
        for (other, other_budget), others in groups.items():
            if budget is not None and other_budget != budget:
                continue
            if others[0]["train"] == "real":
                pairs.append(((scenario, budget), (other, other_budget), "helped:", "hurt:"))
            elif (
                source == "renders"
                and others[0].get("source") == "perlin"
                and others[0]["train"] == train
                and other_budget == budget
            ):
                better, worse = "renders beat the 2D baseline by", "renders fell behind the 2D baseline by"
                pairs.append(((scenario, budget), (other, other_budget), better, worse))
    found = []
    for one, other, better, worse in pairs:
        values = [value(r) for r in groups[one]]
        against = [value(r) for r in groups[other]]
        judgement = judge(values, against)
        words = phrase(judgement, metric, better, worse)
        label = _budget_label(kind, groups[other])
        found.append(
            {
                "model": kind,
                "metric": metric,
                "scenario": one[0],
                "against": other[0],
                "budget": other[1],
                "seeds": len(values),
                "against_seeds": len(against),
                "outcome": judgement.outcome,
                "mean": judgement.mean,
                "against_mean": judgement.against_mean,
                "gap": judgement.gap,
                "verdict": words,
                "line": f"{TITLES[kind]}, {one[0]} vs {other[0]} at {label} — {words}",
            }
        )
    return found
