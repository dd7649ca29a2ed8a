from __future__ import annotations

import json

import pytest

from conftest import CANONICAL, assert_one_line_error, run_cli
from ptychoreg.harness.profile import cross_check, profile_dataset, report_markdown


def test_profile_of_synthetic_data(synthetic):
    profile = profile_dataset(synthetic(n=24, layout="HWN"))
    assert (profile["n"], profile["h"], profile["w"]) == (24, 16, 16)
    assert profile["layout"] == "HWN" and "axis 2" in profile["layout_evidence"]
    assert profile["dtype"] == "float64" and profile["unique_positions"] == 24
    assert profile["amplitude"]["min"] >= 0 and profile["energy_per_pattern"]["mean"] > 0
    assert len(profile["source"]["sha256"]) == 64


def test_cross_check_flags_mismatch(synthetic):
    profile = profile_dataset(synthetic(n=24))
    rows = cross_check(profile, {"n": 24, "h": 64})
    assert [r["ok"] for r in rows[:2]] == [True, False]
    assert "**NO**" in report_markdown(profile, rows)


def test_canonical_profile_matches_the_seed_plan():
    profile = profile_dataset(CANONICAL)
    assert (profile["n"], profile["h"], profile["w"], profile["layout"], profile["dtype"]) == (1087, 64, 64, "HWN", "float64")
    assert profile["source"]["sha256"] == "76fe53894af64bddfa224458f0647a678ac197fc376823071e772baee442b42d"
    assert 600 < profile["energy_per_pattern"]["mean"] < 640  # the dataset card says about 620


@pytest.mark.slow
def test_cli_refuses_a_dataset_that_breaks_the_seed_plan(synthetic, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("profile:\n  expect:\n    n: 1087\n")
    metrics, report = tmp_path / "p.json", tmp_path / "p.md"
    metrics.write_text("{}")
    proc = run_cli("profile", "--source", synthetic(n=24), "--params", params, "--metrics-out", metrics, "--report", report)
    assert_one_line_error(proc, "cross-check failed", "n expected 1087, observed 24")
    assert json.loads(metrics.read_text()) == {} and not report.exists()
