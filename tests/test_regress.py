"""The regress stage's library: settings, checks that can fail, and one real run (slow)."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURE_METRICS
from ptychoreg.errors import PtychoError
from ptychoreg.harness.golden import BLOCKS, read_record
from ptychoreg.harness.regress import RECORD, RegressSettings, orientation_error, run_regression
from ptychoreg.harness.runner import spread


def test_spread_statistics():
    stats = spread([1.0, 2.0, 3.0])
    assert stats == {"median": 2.0, "min": 1.0, "max": 3.0, "cv": 0.5, "n": 3}
    assert spread([4.0])["cv"] == 0.0


def test_settings_from_params():
    assert RegressSettings.from_params({"repeats": 3}).repeats == 3
    with pytest.raises(PtychoError, match="regress.speed"):
        RegressSettings.from_params({"speed": 1})
    with pytest.raises(PtychoError, match="must be >= 1"):
        RegressSettings.from_params({"repeats": 0})


def test_orientation_check_on_the_fixture(fixture_path):
    assert orientation_error(fixture_path) < 1e-4


def test_refuses_a_tampered_fixture_before_running(fixture_path, tmp_path):
    tampered = tmp_path / "fixture.npz"
    data = bytearray(fixture_path.read_bytes())
    data[-100] ^= 0xFF  # same size, one byte changed
    tampered.write_bytes(bytes(data))
    expected = json.loads(FIXTURE_METRICS.read_text())["sha256"]
    with pytest.raises(PtychoError, match="does not match .* recorded in metrics/fixture.json"):
        run_regression(str(tampered), expected, RegressSettings(repeats=1), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_regression_run(fixture_path, tmp_path):
    expected = json.loads(FIXTURE_METRICS.read_text())["sha256"]
    settings = RegressSettings(repeats=2, max_epochs=2, width=4)
    metrics = run_regression(str(fixture_path), expected, settings, tmp_path / "out", params_path="params.yaml",
                             log=lambda _: None)
    assert all(metrics["checks"].values())
    assert metrics["distinct_outputs"] == 1 and metrics["total_s"]["n"] == 2
    assert metrics["total_s"]["median"] < 45
    assert 0 < metrics["peak_rss_mb"]["train"] < 1024
    assert (tmp_path / "out" / "model.pt").is_file() and not list(tmp_path.glob(".out-*"))
    assert "stitched_sha256" not in metrics  # float bytes differ between CPUs: never a cross-machine metric
    for part in ("train", "infer", "total"):
        assert metrics["normalised"][part]["median"] > 0 and metrics["normalised"][part]["n"] == 2
    assert metrics["calibration_s"]["n"] == 2
    record = read_record(tmp_path / "out" / RECORD)
    assert len(record["epochs"]["train_loss"]) == 2 and len(record["blocks"]["amplitude_mean"]) == BLOCKS ** 2
