"""Invariants of the sequential coreset, checked against a naive one-point-at-a-time loop."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from train.patchcore.coreset import SequentialCoreset, nearest_distances


def naive_coreset(x: torch.Tensor, size: int) -> torch.Tensor:
    """The replacement rule as written in DESIGN §5, one point at a time, D from scratch."""
    points: list[torch.Tensor] = []
    for p in x:
        if len(points) < size:
            points.append(p)
            continue
        m = torch.stack(points)
        d = torch.cdist(m, m)
        d.fill_diagonal_(float("inf"))
        d_m = d.min()
        pairs = torch.nonzero((d == d_m) | (d_m == d.T))
        i = int(pairs.min())  # lowest index taking part in a closest pair
        d_p = torch.cdist(p[None], m).min()
        if d_p > d_m:
            points[i] = p
    return torch.stack(points)


def clustered(seed: int, n: int, dim: int, centres: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(centres, dim, generator=g, dtype=torch.float64) * 4
    labels = torch.randint(0, centres, (n,), generator=g)
    return c[labels] + torch.randn(n, dim, generator=g, dtype=torch.float64)


def true_distances(points: torch.Tensor) -> torch.Tensor:
    d = torch.cdist(points, points)
    d.fill_diagonal_(float("inf"))
    return d


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 120),
    size=st.integers(2, 12),
    dim=st.integers(1, 6),
    chunk=st.integers(1, 50),
)
def test_chunked_rule_equals_naive_loop(seed, n, size, dim, chunk):
    x = clustered(seed, n, dim)
    coreset = SequentialCoreset(size, dim, dtype=torch.float64)
    for part in x.split(chunk):
        coreset.add(part)
    assert torch.equal(coreset.stored(), naive_coreset(x, size))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.integers(2, 10), chunk=st.integers(1, 40))
def test_distance_matrix_exact_and_min_distance_monotone(seed, size, chunk):
    x = clustered(seed, 150, 3)
    coreset = SequentialCoreset(size, 3, dtype=torch.float64)
    last = -1.0
    for part in x.split(chunk):
        coreset.add(part)
        stored = coreset.stored()
        expected = true_distances(stored)
        assert torch.allclose(coreset.distances[: coreset.count, : coreset.count], expected)
        assert torch.allclose(coreset.row_min[: coreset.count], expected.min(dim=1).values)
        if coreset.count == size:
            assert coreset.min_distance >= last
            last = coreset.min_distance


def test_distance_matrix_after_every_single_update():
    x = clustered(1, 300, 4)
    coreset = SequentialCoreset(16, 4, dtype=torch.float64)
    changes = 0
    for p in x:
        changes += coreset.add(p[None])
        stored = coreset.stored()
        assert torch.allclose(coreset.distances[: coreset.count, : coreset.count], true_distances(stored))
    assert changes > 16  # replacements happened beyond the fill


def test_epochs_reach_a_fixed_point():
    x = clustered(2, 400, 5)
    coreset = SequentialCoreset(32, 5, dtype=torch.float64)
    history = [coreset.add(x) for _ in range(50)]
    assert history[0] > 32
    assert 0 in history
    stop = history.index(0)
    assert all(h == 0 for h in history[stop:])


def test_nearest_distances_chunked_matches_full():
    x, m = clustered(3, 57, 4), clustered(4, 13, 4)
    expected = torch.cdist(x, m).min(dim=1).values
    assert torch.allclose(nearest_distances(x, m, chunk_size=5), expected)


def test_fill_keeps_only_distinct_points_and_repeats_change_nothing():
    x = clustered(5, 30, 4)
    coreset = SequentialCoreset(64, 4, dtype=torch.float64)
    assert coreset.add(torch.cat([x, x[:7]])) == 30  # copies inside one chunk are skipped
    assert coreset.add(x) == 0  # an epoch of known points changes nothing: early stop
    assert coreset.count == 30
    assert torch.equal(coreset.stored(), x)
    assert coreset.min_distance > 0


def test_fill_skips_copies_then_replaces_from_the_next_point():
    x = clustered(6, 40, 3)
    chunk = torch.cat([x[:5], x[:5], x[5:]])  # 45 rows, 40 distinct, room for 8
    coreset = SequentialCoreset(8, 3, dtype=torch.float64)
    coreset.add(chunk)
    assert torch.equal(coreset.stored(), naive_coreset(x, 8))
