"""Contract tests for the committed fixture itself (B2.B): what the regression may rely on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import CANONICAL, FIXTURE_METRICS, SIDECAR
from ptychoreg.core.contract import load_npz
from ptychoreg.core.fileio import file_digest
from ptychoreg.core.geometry import extract_patches


@pytest.fixture(scope="module")
def fixture(fixture_path):
    return load_npz(fixture_path)


@pytest.fixture(scope="module")
def sidecar():
    return json.loads(SIDECAR.read_text())


def test_arrays_and_dtypes(fixture):
    n = fixture.n
    assert fixture.diffraction.shape == (n, 64, 64) and fixture.diffraction.dtype == np.float32
    for array in (fixture.probe, fixture.object, fixture.patches):
        assert array.dtype == np.complex64
    assert fixture.patches.shape == (n, 64, 64)
    for coords in (fixture.xcoords, fixture.ycoords, fixture.xcoords_start, fixture.ycoords_start):
        assert coords.shape == (n,) and coords.dtype == np.float64


def test_patches_are_the_object_at_the_positions(fixture):
    expected = extract_patches(fixture.object, fixture.ycoords, fixture.xcoords, 64)
    assert np.abs(fixture.patches - expected).max() < 1e-5


def test_subset_is_the_canonical_subset(fixture, sidecar):
    """PtychoPINN's generator paired the first n patterns with the coordinates of another subset."""
    canonical = load_npz(CANONICAL)
    idx = np.array(sidecar["subset"]["indices"])
    np.testing.assert_array_equal(fixture.diffraction, canonical.diffraction[idx].astype(np.float32))
    np.testing.assert_array_equal(fixture.xcoords, canonical.xcoords[idx])
    np.testing.assert_array_equal(fixture.ycoords, canonical.ycoords[idx])


def test_sidecar_fields(sidecar, fixture):
    for key in ("version", "generator", "source", "subset", "transformations", "fixture", "arrays",
                "coverage", "unique_positions"):
        assert key in sidecar, key
    assert sidecar["subset"]["size"] == fixture.n == len(sidecar["subset"]["indices"])
    assert sidecar["source"]["sha256"] == file_digest(CANONICAL)


def test_sha256_matches_sidecar_and_metrics(fixture_path, sidecar):
    actual = file_digest(fixture_path)
    assert actual == sidecar["fixture"]["sha256"]
    assert actual == json.loads(FIXTURE_METRICS.read_text())["sha256"]


def test_coverage_and_unique_positions(fixture):
    canonical = load_npz(CANONICAL)
    for sub, full in ((fixture.xcoords, canonical.xcoords), (fixture.ycoords, canonical.ycoords)):
        assert np.ptp(sub) / np.ptp(full) > 0.5
    assert len(np.unique(np.stack([fixture.ycoords, fixture.xcoords], 1), axis=0)) >= 2
