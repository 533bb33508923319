"""The sequential coreset: a fixed-size set of patch features kept evenly spread.

Memory is O(size² + chunk × size) whatever the number of patches fed, so the same code
pretrains on any dataset size, fine-tunes from a saved state and melds coresets.
"""

from __future__ import annotations

import torch

INF = float("inf")


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distances between the rows of `a` and `b` by one matrix product.

    `a_sq`, the squared norms of `a`'s rows, can be passed when `a` is reused.
    """
    a_sq = (a * a).sum(dim=1) if a_sq is None else a_sq
    d2 = torch.addmm(a_sq[:, None] + (b * b).sum(dim=1)[None, :], a, b.T, alpha=-2)
    return d2.clamp_min_(0).sqrt_()


def nearest_distances(x: torch.Tensor, points: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Distance of every row of `x` to its nearest row of `points`, `chunk_size` rows at a time."""
    parts = [pairwise_distances(part, points).min(dim=1).values for part in x.split(chunk_size)]
    return torch.cat(parts) if parts else x.new_empty(0)


class SequentialCoreset:
    """Fixed-size coreset updated by the replacement rule.

    The first `size` distinct points fill the coreset. Then an incoming point p with distance d_p to
    its nearest coreset point replaces the lower index of the closest coreset pair (distance
    d_m) when d_p > d_m. A dense distance matrix (diagonal +inf) and its row minima make d_m
    and the closest pair available in O(size) after each replacement.
    """

    def __init__(
        self,
        size: int,
        dim: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if size < 2:
            raise ValueError(f"a coreset needs at least 2 points, got size={size}")
        self.size = size
        self.points = torch.zeros(size, dim, device=device, dtype=dtype)
        self.distances = torch.full((size, size), INF, device=device, dtype=dtype)
        self.row_min = torch.full((size,), INF, device=device, dtype=dtype)
        self.row_arg = torch.zeros(size, device=device, dtype=torch.long)
        self.count = 0

    @classmethod
    def from_points(
        cls, points: torch.Tensor, size: int | None = None, device: str | torch.device = "cpu"
    ) -> SequentialCoreset:
        """Continue from stored points (fine-tuning); a larger `size` leaves room to fill."""
        coreset = cls(size or len(points), points.shape[1], device=device, dtype=points.dtype)
        coreset.add(points.to(device))
        return coreset

    @property
    def min_distance(self) -> float:
        """d_m: the smallest distance between two coreset points (+inf until two exist)."""
        return float(self.row_min.min())

    def stored(self) -> torch.Tensor:
        return self.points[: self.count]

    def add(self, x: torch.Tensor) -> int:
        """Feed points in order, `x` being one chunk; returns how many entered the coreset.

        While filling, a point equal to one already stored is skipped: a copy would add
        nothing and set d_m to 0, so an epoch that only repeats known points changes nothing
        (early stop), and a coreset fed fewer distinct points than `size` holds just those.
        """
        x = x.to(self.points)
        room = self.size - self.count
        if room == 0:
            return self._replace(x)
        fresh = self._first_occurrences(x)
        if len(fresh) <= room:
            self._fill(x[fresh])
            return len(fresh)
        self._fill(x[fresh[:room]])
        return room + self._replace(x[int(fresh[room - 1]) + 1 :])

    def _first_occurrences(self, x: torch.Tensor) -> torch.Tensor:
        """Indices (ascending) of the rows of `x` equal neither to a stored point nor to an
        earlier row of `x`."""
        pooled = torch.cat([self.stored(), x])
        _, inverse = torch.unique(pooled, dim=0, return_inverse=True)
        first = torch.full((len(pooled),), len(pooled), dtype=torch.long, device=x.device)
        first.scatter_reduce_(0, inverse, torch.arange(len(pooled), device=x.device), reduce="amin")
        rows = torch.arange(self.count, len(pooled), device=x.device)
        return rows[first[inverse[self.count :]] == rows] - self.count

    def _fill(self, x: torch.Tensor) -> None:
        start, n = self.count, len(x)
        if n == 0:
            return
        end = start + n
        self.points[start:end] = x
        block = pairwise_distances(x, self.points[:end])
        square = block[:, start:end]
        square.copy_(torch.minimum(square, square.T))  # the matrix product is not symmetric
        square.fill_diagonal_(INF)
        self.distances[start:end, :end] = block
        self.distances[:end, start:end] = block.T
        self.row_min[:end], self.row_arg[:end] = self.distances[:end, :end].min(dim=1)
        self.count = end

    def _replace(self, x: torch.Tensor) -> int:
        x_sq = (x * x).sum(dim=1)
        dist = pairwise_distances(x, self.points, x_sq)
        if self.points.device.type != "cpu":
            return self._walk(x, x_sq, dist)
        # The walk is many tiny ops: waking intra-op threads costs more than they save
        # (10x slower on a busy 2-core machine), so it runs single-threaded.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._walk(x, x_sq, dist)
        finally:
            torch.set_num_threads(threads)

    def _walk(self, x: torch.Tensor, x_sq: torch.Tensor, dist: torch.Tensor) -> int:
        # dist[q] is kept equal to the distances of candidate q to the *current* coreset: when
        # a point is replaced, its column is recomputed for the candidates still to come, so
        # the replacements inside the chunk act on later candidates exactly as one by one.
        near, near_arg = dist.min(dim=1)
        changes, start = 0, 0
        while start < len(x):
            passing = torch.nonzero(near[start:] > self.row_min.min())
            if len(passing) == 0:
                break
            q = start + int(passing[0])
            r = int(torch.argmin(self.row_min))  # lowest index of a closest pair
            row = dist[q].clone()
            row[r] = INF
            self.points[r] = x[q]
            self._set_row(r, row)
            changes += 1
            start = q + 1
            if start < len(x):
                column = pairwise_distances(x[start:], x[q : q + 1], x_sq[start:])[:, 0]
                self._update_candidates(dist[start:], near[start:], near_arg[start:], r, column)
        return changes

    def _set_row(self, r: int, row: torch.Tensor) -> None:
        """Replace point r's distances and repair the row minima that depended on it."""
        self.distances[r] = row
        self.distances[:, r] = row
        closer = row < self.row_min
        stale = (self.row_arg == r) & ~closer
        self.row_min = torch.where(closer, row, self.row_min)
        self.row_arg = torch.where(closer, r, self.row_arg)
        stale[r] = True
        rows = torch.nonzero(stale)[:, 0]
        self.row_min[rows], self.row_arg[rows] = self.distances[rows].min(dim=1)

    @staticmethod
    def _update_candidates(
        dist: torch.Tensor, near: torch.Tensor, near_arg: torch.Tensor, r: int, column: torch.Tensor
    ) -> None:
        """In place: column r of the candidates' distances now points at the new point."""
        dist[:, r] = column
        closer = column < near
        stale = (near_arg == r) & ~closer
        near.copy_(torch.where(closer, column, near))
        near_arg.copy_(torch.where(closer, r, near_arg))
        rows = torch.nonzero(stale)[:, 0]
        if len(rows):
            near[rows], near_arg[rows] = dist[rows].min(dim=1)
