"""Scan-position groups (gridsize g): a seed position plus g*g - 1 of its K nearest neighbours.

`n_groups` counts groups; a group holds C = g*g patterns (images = groups x C). Sampling is seeded:
"random" draws seeds and neighbours from a numpy Generator seeded from the config; "sequential" takes
seeds 0..n_groups-1 in scan order and each seed's nearest neighbours (what inference uses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptychoreg.core.errors import PtychoError

SAMPLINGS = ("random", "sequential")


@dataclass(frozen=True)
class Groups:
    indices: np.ndarray  # (G, C) int64 pattern indices; column 0 is the seed
    offsets: np.ndarray  # (G, C, 2) float64 (dy, dx) of each member from the group's mean position

    @property
    def n_groups(self) -> int:
        return self.indices.shape[0]

    @property
    def channels(self) -> int:
        return self.indices.shape[1]


def nearest_neighbours(ycoords: np.ndarray, xcoords: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each position's k nearest other positions, nearest first (ties by index)."""
    positions = np.stack([ycoords, xcoords], axis=1).astype(np.float64)
    # Brute force is exact and fast at these sizes (1087^2 distances in a few ms); no k-d tree needed.
    distances = np.square(positions[:, None, :] - positions[None, :, :]).sum(axis=-1)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def make_groups(
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    gridsize: int,
    n_groups: int | None,
    neighbours: int = 4,
    sampling: str = "random",
    seed: int = 0,
    max_offset: float | None = None,
) -> Groups:
    """Build `n_groups` groups (None: one per position). Offsets beyond `max_offset` px are refused."""
    n = len(xcoords)
    channels = gridsize * gridsize
    if gridsize < 1:
        raise PtychoError(None, f"gridsize must be >= 1, got {gridsize}")
    if sampling not in SAMPLINGS:
        raise PtychoError(None, f"group sampling '{sampling}' is not one of {', '.join(SAMPLINGS)}")
    n_groups = n if n_groups is None else int(n_groups)
    if not 1 <= n_groups <= n:
        raise PtychoError(None, f"n_groups {n_groups} must lie in 1..{n} (the number of scan positions)")
    rng = np.random.default_rng(seed)
    seeds = np.arange(n_groups) if sampling == "sequential" else np.sort(rng.choice(n, n_groups, replace=False))
    if channels == 1:
        indices = seeds[:, None].astype(np.int64)
        return Groups(indices, np.zeros((n_groups, 1, 2)))

    if neighbours < channels - 1:
        raise PtychoError(None, f"gridsize {gridsize} needs K >= {channels - 1} neighbours, got K = {neighbours}")
    unique = len(np.unique(np.stack([ycoords, xcoords], axis=1), axis=0))
    if n < channels or unique < channels:
        raise PtychoError(
            None,
            f"too few neighbours to form gridsize-{gridsize} groups: {unique} unique positions, "
            f"need at least {channels}",
        )
    near = nearest_neighbours(ycoords, xcoords, min(neighbours, n - 1))[seeds]
    if sampling == "sequential":
        chosen = near[:, : channels - 1]
    else:
        order = np.argsort(rng.random(near.shape), axis=1, kind="stable")[:, : channels - 1]
        chosen = np.take_along_axis(near, order, axis=1)
    indices = np.concatenate([seeds[:, None], chosen], axis=1).astype(np.int64)
    positions = np.stack([ycoords[indices], xcoords[indices]], axis=-1).astype(np.float64)
    offsets = positions - positions.mean(axis=1, keepdims=True)
    if max_offset is not None and np.abs(offsets).max() > max_offset:
        raise PtychoError(
            None,
            f"gridsize-{gridsize} groups spread too far: a member lies {np.abs(offsets).max():.1f} px from its "
            f"group centre, more than {max_offset:g} px, so its patch cannot overlap the others",
        )
    return Groups(indices, offsets)
