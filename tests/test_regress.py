"""The regress stage's library: settings, checks that can fail, and one real run (slow)."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURE_METRICS
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.config import RegressSettings
from ptychoreg.harness.regress import orientation_error, run_regression
from ptychoreg.harness.runner import RecipeRun, run_train_infer


def test_settings_from_params():
    assert RegressSettings.from_params({"repeats": 3}).repeats == 3
    with pytest.raises(PtychoError, match="regress.speed"):
        RegressSettings.from_params({"repeats": 3, "speed": 1})
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
        run_regression(str(tampered), expected, RegressSettings(repeats=1), RecipeRun.of(None, None))


@pytest.mark.slow
def test_real_regression_run(fixture_path, tmp_path):
    expected = json.loads(FIXTURE_METRICS.read_text())["sha256"]
    settings, run = RegressSettings(repeats=2), RecipeRun.of("params.yaml", "regression")
    # The staged run (what train_fixture + infer_fixture do), then the timed runs that must reproduce it.
    staged = tmp_path / "staged"
    run_train_infer(str(fixture_path), staged, run)
    metrics, per_repeat = run_regression(str(fixture_path), expected, settings, run,
                                         staged_run=staged, log=lambda _: None)
    assert all(metrics["checks"].values()) and metrics["checks"]["reproduces_staged_run"]
    assert metrics["distinct_outputs"] == 1 and metrics["total_s"]["n"] == 2
    assert metrics["total_s"]["median"] < 45
    assert 0 < metrics["train_rss_mb"]["median"] < 1024 and metrics["infer_rss_mb"]["n"] == metrics["settings"]["repeats"]
    assert 0 < metrics["train_cpu_s"]["median"] and 0 < metrics["infer_cpu_s"]["min"]
    assert "stitched_sha256" not in metrics  # float bytes differ between CPUs: never a cross-machine metric
    for part in ("train", "infer", "total"):
        assert metrics["normalised"][part]["median"] > 0 and metrics["normalised"][part]["n"] == 2
    assert metrics["calibration_s"]["n"] == 2
    assert [r["repeat"] for r in per_repeat] == [1, 2]
    assert min(r["total_s"] for r in per_repeat) == metrics["total_s"]["min"]

    # A staged run of other settings is not what the timed runs reproduce: the stage fails.
    summary = json.loads((staged / "summary.json").read_text())
    (staged / "summary.json").write_text(json.dumps({**summary, "stitched_sha256": "0" * 64}))
    with pytest.raises(PtychoError, match="regression failed: reproduces_staged_run"):
        run_regression(str(fixture_path), expected, RegressSettings(repeats=1), RecipeRun.of("params.yaml", "regression"),
                       staged_run=staged, log=lambda _: None)


def test_breakdown_accounts_for_every_second(tmp_path):
    from ptychoreg.harness.runner import RunRecord, breakdown

    log, timings = tmp_path / "train.log", tmp_path / "train_timings.json"
    timings.write_text('{"phases": {"settings and data": 0.1, "imports (torch, ours)": 1.5, "training": 2.0}}\n')
    parts = breakdown(RunRecord("train", 4.0, 100.0, log, timings), interpreter_s=0.05)
    assert parts["interpreter start"] == 0.05 and parts["training"] == 2.0
    assert sum(parts.values()) == pytest.approx(4.0)
    timings.unlink()  # a command killed before it wrote its timings
    with pytest.raises(PtychoError, match="no timings file"):
        breakdown(RunRecord("train", 4.0, 100.0, log, timings), interpreter_s=0.05)


def test_a_child_s_peak_is_its_own_not_its_larger_parent_s(tmp_path):
    """wait4 from a large parent reports the parent's size (the mutation stage's parent has trained
    in-process, a test process is large): run_cli measures the command's own peak."""
    import os
    import resource
    import sys

    from ptychoreg.harness.runner import run_cli

    ballast = b"\x01" * (300 << 20)  # this process: 300 MB more, every page written
    direct = os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], os.environ)
    _, _, usage = os.wait4(direct, 0)
    assert usage.ru_maxrss / 1024 > 300  # the trap: a bare child "peaks" at its parent's size
    record = run_cli("ptychoreg.cli.infer", ["--help"], tmp_path / "help.log", threads=1)
    assert record.peak_rss_mb < 150 and len(ballast), record.peak_rss_mb
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 > 300
