"""The fixture generator on synthetic inputs: layouts, strategies, refusals, atomicity, reproducibility."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import assert_one_line_error, project_settings, project_values, run_cli, synthetic_arrays
from ptychoreg.core.contract import load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.fixture import fixture_metrics, generate, select_indices
from ptychoreg.core.config import FixtureSpec
from ptychoreg.core.geometry import extract_patches


def spec(tmp_path, **changes) -> FixtureSpec:
    return project_settings("fixture", **{"subset_size": 16, "output": str(tmp_path / "out" / "fixture.npz"),
                                          "min_subset": 4, **changes})


def test_stratified_and_first_indices():
    np.testing.assert_array_equal(select_indices(1087, 64, "first"), np.arange(64))
    idx = select_indices(1087, 64, "stratified")
    assert idx[0] == 0 and idx[-1] == 1086 and len(np.unique(idx)) == 64
    steps = np.diff(idx)
    assert steps.min() >= 17 and steps.max() <= 18
    np.testing.assert_array_equal(select_indices(10, 10, "stratified"), np.arange(10))


@pytest.mark.parametrize("strategy", ["stratified", "first"])
def test_fixture_content_from_legacy_and_canonical_layouts(synthetic, tmp_path, strategy):
    source_nhw = synthetic("nhw.npz", n=36, layout="NHW")
    source_hwn = synthetic("hwn.npz", n=36, layout="HWN")
    s = spec(tmp_path, strategy=strategy)
    sidecar = generate(source_hwn, s)
    fixture = load_npz(s.output)
    canonical = load_npz(source_nhw)
    idx = np.array(sidecar["subset"]["indices"])
    np.testing.assert_array_equal(idx, select_indices(36, 16, strategy))
    assert fixture.layout.layout == "NHW"
    assert fixture.diffraction.dtype == np.float32 and fixture.probe.dtype == np.complex64
    assert fixture.object.dtype == np.complex64 and fixture.patches.dtype == np.complex64
    # Values change only by the dtype conversion; positions travel with their own patterns.
    np.testing.assert_array_equal(fixture.diffraction, canonical.diffraction[idx].astype(np.float32))
    np.testing.assert_array_equal(fixture.xcoords, canonical.xcoords[idx])
    np.testing.assert_array_equal(fixture.ycoords, canonical.ycoords[idx])
    expected_y = extract_patches(canonical.object, canonical.ycoords[idx], canonical.xcoords[idx], 16)
    np.testing.assert_array_equal(fixture.patches, expected_y.astype(np.complex64))
    assert sidecar["source"]["layout"] == "HWN" and "HWN -> NHW" in sidecar["transformations"][0]


def test_sidecar_is_byte_stable(synthetic, tmp_path):
    """No clock, host or commit in a tracked output: a later rebuild elsewhere gives the same bytes."""
    source = synthetic(n=36)
    s = spec(tmp_path)
    generate(source, s)
    first = (tmp_path / "out" / "fixture.json").read_bytes()
    (tmp_path / "out" / "fixture.json").unlink()
    generate(source, s)
    assert (tmp_path / "out" / "fixture.json").read_bytes() == first
    for word in (b"utc", b"seconds", b"commit", b"dirty"):
        assert word not in first.lower()


def test_same_source_same_bytes(synthetic, tmp_path):
    source = synthetic(n=36)
    first = generate(source, spec(tmp_path, output=str(tmp_path / "a.npz")))
    second = generate(source, spec(tmp_path, output=str(tmp_path / "b.npz")))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert first["fixture"]["sha256"] == second["fixture"]["sha256"]


def test_sidecar_and_metrics(synthetic, tmp_path):
    s = spec(tmp_path)
    sidecar = generate(synthetic(n=36), s)
    on_disk = json.loads((tmp_path / "out" / "fixture.json").read_text())
    assert on_disk == sidecar
    for key in ("version", "generator", "source", "subset", "transformations", "fixture", "arrays"):
        assert key in sidecar
    assert {"module", "version", "code"} <= set(sidecar["generator"])
    assert "harness/fixture.py" in sidecar["generator"]["code"]["files"]
    metrics = fixture_metrics(sidecar)
    # Facts of the fixture only: no build time or date, so the file is the same bytes on every machine.
    assert not {"built_utc", "build_seconds"} & set(metrics)
    assert metrics["n"] == 16 and metrics["shapes"]["diffraction"] == [16, 16, 16]
    assert 0.5 < metrics["coverage"]["x"] <= 1 and metrics["unique_positions"] == 16


@pytest.mark.parametrize("changes,fragment", [
    ({"subset_size": 3}, "below the minimum 4"),
    ({"subset_size": 37}, "exceeds the 36 patterns"),
])
def test_subset_size_refusals(synthetic, tmp_path, changes, fragment):
    with pytest.raises(PtychoError, match=fragment):
        generate(synthetic(n=36), spec(tmp_path, **changes))


def test_identical_positions_refused(synthetic, tmp_path):
    same = np.full(36, 12.0)
    with pytest.raises(PtychoError, match="1 unique scan position"):
        generate(synthetic(n=36, xcoords=same, ycoords=same), spec(tmp_path))


def test_too_few_neighbours_for_gridsize_two_refused(synthetic, tmp_path):
    arrays = synthetic_arrays(n=36)
    x = np.resize(arrays["xcoords"][:3], 36)  # three distinct positions, repeated
    y = np.resize(arrays["ycoords"][:3], 36)
    with pytest.raises(PtychoError, match="cannot serve gridsize 2: too few neighbours"):
        generate(synthetic(n=36, xcoords=x, ycoords=y), spec(tmp_path, strategy="first"))


def test_missing_object_refused(synthetic, tmp_path):
    with pytest.raises(PtychoError, match="key 'objectGuess'"):
        generate(synthetic(n=36, objectGuess=None), spec(tmp_path))


def test_bad_params_refused():
    with pytest.raises(PtychoError, match="key 'fixture.strategy'"):
        FixtureSpec.from_params(project_values("fixture") | {"strategy": "random"})
    with pytest.raises(PtychoError, match="key 'fixture.subset_size': expected int"):
        FixtureSpec.from_params(project_values("fixture") | {"subset_size": "64"})
    with pytest.raises(PtychoError, match="key 'fixture.min_unique_positions'"):
        FixtureSpec.from_params(project_values("fixture") | {"min_unique_positions": 1})


def test_failed_run_leaves_previous_fixture_untouched(synthetic, tmp_path):
    source = synthetic(n=36)
    s = spec(tmp_path)
    generate(source, s)
    before = {p: (tmp_path / "out" / p).read_bytes() for p in os.listdir(tmp_path / "out")}
    with pytest.raises(PtychoError):
        generate(source, spec(tmp_path, subset_size=99))
    after = {p: (tmp_path / "out" / p).read_bytes() for p in os.listdir(tmp_path / "out")}
    assert after == before  # same files, same bytes, no temporary leftovers


@pytest.mark.slow
def test_cli_refusal_is_one_line(synthetic, tmp_path):
    source = synthetic(n=36)
    out = tmp_path / "cli.npz"
    ok = run_cli("fixture", "--source", source, "--output", out, "--subset-size", "16", "--params", "params.yaml")
    assert ok.returncode == 0, ok.stderr
    assert out.with_suffix(".json").is_file()
    good = out.read_bytes()
    bad = run_cli("fixture", "--source", source, "--output", out, "--subset-size", "15", "--params", "params.yaml")
    assert_one_line_error(bad, str(source), "below the minimum 16")
    assert out.read_bytes() == good
