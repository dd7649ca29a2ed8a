from __future__ import annotations

import json

import pytest

from conftest import ROOT
from ptychoreg.harness.quality import PHASES
from ptychoreg.harness.quality_curve import scaled_epochs
from ptychoreg.harness.runner import RecipeRun


def test_a_budget_scales_both_phases_epochs():
    runs = [RecipeRun.of(str(ROOT / "params.yaml"), name) for name in PHASES]
    full = [run.config.train.max_epochs for run in runs]
    assert scaled_epochs(runs, 0.5) == [round(e / 2) for e in full]
    assert scaled_epochs(runs, 0.01) == [1, 1]
    with pytest.raises(ValueError, match="positive"):
        scaled_epochs(runs, 0)


@pytest.mark.slow
def test_the_curve_runs_the_quality_recipe_at_each_budget(tmp_path, fixture_path):
    """The real CLI on the fixture: one quality run per scale, ascending, and a record DVC can plot."""
    from ptychoreg.cli.quality_curve import main

    params = tmp_path / "params.yaml"
    params.write_text("recipes:\n  quality_pretrain: {model: {width: 4}, train: {max_epochs: 2}}\n"
                      "  quality_refine: {extends: quality_pretrain, model: {gridsize: 2}}\n"
                      "quality: {min_amplitude_ssim: 0.99, min_phase_ssim: 0.99}\n")  # a floor no tiny run reaches: the curve must not enforce it
    out = tmp_path / "metrics.json"
    assert main(["--data", str(fixture_path), "--scales", "1", "0.5", "--params", str(params),
                 "--out-dir", str(tmp_path / "runs"), "--metrics-out", str(out)]) == 0
    curve = json.loads(out.read_text())
    assert [p["scale"] for p in curve["points"]] == [0.5, 1.0]
    assert [p["epochs"] for p in curve["points"]] == [[1, 1], [2, 2]]
    for p in curve["points"]:
        assert p["train_s"] > 0 and 0 < p["amplitude_ssim"] < 1 and 0 < p["phase_ssim"] < 1
    assert (tmp_path / "runs/scale-0.5/quality_refine/model.pt").is_file()
    assert (tmp_path / "runs/scale-1/quality_pretrain/model.pt").is_file()
