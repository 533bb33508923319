"""The train/val/test split of a source's items, stratified by class and file-name group."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from evaluate.formats.source import (
    ImportFailure,
    SourceItem,
)
from synth.config import SPLITS
from synth.errors import ConfigError


def assign_splits(
    items: Sequence[SourceItem],
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    group_pattern: str | None = None,
) -> dict[str, str]:
    """Deterministic train/val/test split of item ids, stratified by class and file-name group.

    Within each stratum (class, and the first match of `group_pattern` in the file name), the
    ids are sorted, shuffled with a generator seeded by (seed, stratum), and cut at the rounded
    cumulative fractions, so one stratum's split does not depend on the others.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ImportFailure(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    try:
        regex = re.compile(group_pattern) if group_pattern else None
    except re.error as e:
        raise ConfigError(f"--group-pattern {group_pattern!r} is not a regular expression ({e})") from None
    strata: dict[str, list[str]] = defaultdict(list)
    for item in items:
        match = regex.search(item.image.name) if regex else None
        strata[f"{item.stratum}|{match.group(0) if match else ''}"].append(item.id)
    split_of = {}
    for key, ids in sorted(strata.items()):
        rng = np.random.default_rng([seed, *key.encode()])
        order = sorted(ids)
        rng.shuffle(order)
        n = len(order)
        cut_train = int(n * fractions[0] + 0.5)
        cut_val = int(n * (fractions[0] + fractions[1]) + 0.5)
        for i, sid in enumerate(order):
            split_of[sid] = SPLITS[0] if i < cut_train else SPLITS[1] if i < cut_val else SPLITS[2]
    return split_of
