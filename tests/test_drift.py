"""The drift gate, on synthetic metrics and end to end in a scratch git + DVC repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, project_settings
from ptychoreg.harness.drift import evaluate, format_table

SETTINGS = project_settings("drift", runtime_rise=0.25, quality_drop=0.05,
                         runtime_metrics={"metrics/regression.json": ["total_s.median"]},
                         quality_metrics={"metrics/quality.json": ["quality.amplitude.ssim"]})


def diff(total=(8.0, 8.0), ssim=(0.5, 0.5), sha=("a", "a")):
    return {
        "metrics/regression.json": {"total_s.median": {"old": total[0], "new": total[1]}},
        "metrics/quality.json": {"quality.amplitude.ssim": {"old": ssim[0], "new": ssim[1]}},
        "metrics/fixture.json": {"sha256": {"old": sha[0], "new": sha[1]}},
    }


def failing(findings):
    return [f.metric.split(":")[-1] for f in findings if not f.ok]


def test_unchanged_metrics_pass():
    assert failing(evaluate(diff(), {}, SETTINGS)) == []


def test_runtime_rise_beyond_tolerance_fails():
    assert failing(evaluate(diff(total=(8.0, 9.9)), {}, SETTINGS)) == []
    assert failing(evaluate(diff(total=(8.0, 10.1)), {}, SETTINGS)) == ["total_s.median"]
    assert failing(evaluate(diff(total=(8.0, 4.0)), {}, SETTINGS)) == []  # faster is fine


def test_quality_drop_beyond_tolerance_fails():
    assert failing(evaluate(diff(ssim=(0.5, 0.46)), {}, SETTINGS)) == []
    assert failing(evaluate(diff(ssim=(0.5, 0.44)), {}, SETTINGS)) == ["quality.amplitude.ssim"]


def test_fixture_change_needs_a_param_change():
    assert failing(evaluate(diff(sha=("a", "b")), {}, SETTINGS)) == ["sha256"]
    params = {"params.yaml": {"fixture.subset_size": {"old": 64, "new": 32}}}
    assert failing(evaluate(diff(sha=("a", "b")), params, SETTINGS)) == []
    other = {"params.yaml": {"train.max_epochs": {"old": 1, "new": 2}}}
    assert failing(evaluate(diff(sha=("a", "b")), other, SETTINGS)) == ["sha256"]


def test_missing_metrics_are_reported_not_failed():
    findings = evaluate({}, {}, SETTINGS)
    assert failing(findings) == [] and "not comparable" in format_table(findings)


def test_table_is_readable_and_warn_mode():
    findings = evaluate(diff(total=(8.0, 12.0)), {}, SETTINGS)
    table = format_table(findings)
    assert "FAIL" in table and "+50.0 %" in table and table.splitlines()[0].startswith("rule")
    assert "WARN" in format_table(findings, warn_only={"runtime"})


@pytest.mark.slow
def test_gate_end_to_end_fails_on_doctored_metrics_and_passes_on_committed(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e")
    run = lambda *a: subprocess.run(a, cwd=repo, env=env, check=True, capture_output=True, text=True)
    run("git", "init", "-q")
    run(sys.executable, "-m", "dvc", "init", "-q")
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    (repo / "metrics").mkdir()
    for name in ("regression.json", "fixture.json", "quality.json"):
        shutil.copy(ROOT / "metrics" / name, repo / "metrics" / name)
    (repo / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: 'true'\n    params: [fixture]\n    metrics:\n"
        "      - metrics/regression.json:\n          cache: false\n      - metrics/fixture.json:\n          cache: false\n"
        "      - metrics/quality.json:\n          cache: false\n")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")

    gate = lambda: subprocess.run([sys.executable, "-m", "ptychoreg.cli.drift", "--rev", "HEAD"], cwd=repo, env=env,
                                  capture_output=True, text=True)
    passed = gate()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "no drift beyond tolerance" in passed.stdout

    doctored = json.loads((repo / "metrics/regression.json").read_text())
    doctored["normalised"]["total"]["median"] *= 1.5
    (repo / "metrics/regression.json").write_text(json.dumps(doctored))
    worse = json.loads((repo / "metrics/quality.json").read_text())
    worse["quality"]["amplitude"]["correlation"] -= 0.2
    (repo / "metrics/quality.json").write_text(json.dumps(worse))
    failed = gate()
    assert failed.returncode == 1
    assert "FAIL" in failed.stdout
    assert "regression:normalised.total.median, quality:quality.amplitude.correlation" in failed.stderr
    assert "drifted beyond tolerance" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
