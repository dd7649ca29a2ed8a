from __future__ import annotations

import numpy as np
import pytest

from conftest import synthetic_arrays
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.grouping import make_groups, nearest_neighbours


@pytest.fixture
def scan():
    arrays = synthetic_arrays(n=36, size=16)
    return arrays["ycoords"], arrays["xcoords"]


def test_nearest_neighbours_excludes_self_and_orders_by_distance(scan):
    y, x = scan
    near = nearest_neighbours(y, x, 4)
    assert near.shape == (36, 4)
    assert not np.any(near == np.arange(36)[:, None])
    d = np.hypot(y[near] - y[:, None], x[near] - x[:, None])
    assert np.all(np.diff(d, axis=1) >= 0)


def test_gridsize_one_groups_are_single_patterns(scan):
    groups = make_groups(*scan, gridsize=1, n_groups=10, sampling="sequential")
    np.testing.assert_array_equal(groups.indices[:, 0], np.arange(10))
    assert groups.offsets.shape == (10, 1, 2) and not groups.offsets.any()


def test_n_groups_counts_groups_not_images(scan):
    groups = make_groups(*scan, gridsize=2, n_groups=8, sampling="random", seed=3)
    assert groups.indices.shape == (8, 4)  # 8 groups of 4 images
    assert groups.n_groups == 8 and groups.channels == 4


def test_gridsize_two_members_are_near_neighbours_and_offsets_centred(scan):
    y, x = scan
    groups = make_groups(y, x, gridsize=2, n_groups=None, neighbours=4, sampling="random", seed=1)
    near = nearest_neighbours(y, x, 4)
    for seed_index, members in zip(groups.indices[:, 0], groups.indices[:, 1:]):
        assert set(members) <= set(near[seed_index])
        assert len(set(members)) == 3
    np.testing.assert_allclose(groups.offsets.mean(axis=1), 0, atol=1e-12)


def test_random_sampling_is_seeded(scan):
    a = make_groups(*scan, gridsize=2, n_groups=12, seed=7)
    b = make_groups(*scan, gridsize=2, n_groups=12, seed=7)
    c = make_groups(*scan, gridsize=2, n_groups=12, seed=8)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)


def test_refusals(scan):
    y, x = scan
    with pytest.raises(PtychoError, match="n_groups 37 must lie in 1..36"):
        make_groups(y, x, 1, 37)
    with pytest.raises(PtychoError, match="too few neighbours"):
        make_groups(np.array([1.0, 1, 1, 2]), np.array([1.0, 1, 1, 2]), 2, None)
    with pytest.raises(PtychoError, match="spread too far"):
        make_groups(y * 10, x * 10, 2, None, max_offset=8)
    with pytest.raises(PtychoError, match="K >= 3"):
        make_groups(y, x, 2, None, neighbours=2)
