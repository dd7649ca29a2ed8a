from __future__ import annotations

import json

import pytest

from ptychoreg.config import QualitySettings
from ptychoreg.harness.quality_curve import scaled_settings


def test_a_budget_scales_both_phases_epochs():
    settings = QualitySettings(max_epochs=34, refine_epochs=4)
    half = scaled_settings(settings, 0.5)
    assert (half.max_epochs, half.refine_epochs) == (17, 2)
    assert (half.width, half.learning_rate, half.refine_gridsize) == (settings.width, settings.learning_rate, settings.refine_gridsize)
    tiny = scaled_settings(settings, 0.01)
    assert (tiny.max_epochs, tiny.refine_epochs) == (1, 1)
    assert scaled_settings(QualitySettings(refine_epochs=0), 2).refine_epochs == 0
    with pytest.raises(ValueError, match="positive"):
        scaled_settings(settings, 0)


@pytest.mark.slow
def test_the_curve_runs_the_quality_recipe_at_each_budget(tmp_path, fixture_path):
    """The real CLI on the fixture: one quality run per scale, ascending, and a record DVC can plot."""
    from ptychoreg.cli.quality_curve import main

    params = tmp_path / "params.yaml"
    params.write_text("quality:\n  max_epochs: 2\n  width: 4\n  batch_size: 16\n  refine_epochs: 2\n  threads: 1\n"
                      "  min_ssim: 0.99\n")  # a floor no tiny run reaches: the curve must not enforce it
    out = tmp_path / "metrics.json"
    assert main(["--data", str(fixture_path), "--scales", "1", "0.5", "--params", str(params),
                 "--out-dir", str(tmp_path / "runs"), "--metrics-out", str(out)]) == 0
    curve = json.loads(out.read_text())
    assert [p["scale"] for p in curve["points"]] == [0.5, 1.0]
    assert [p["epochs"] for p in curve["points"]] == [[1, 1], [2, 2]]
    for p in curve["points"]:
        assert p["train_s"] > 0 and 0 < p["amplitude_ssim"] < 1 and 0 < p["phase_ssim"] < 1
    assert (tmp_path / "runs/scale-0.5/model.pt").is_file() and (tmp_path / "runs/scale-1/pretrain/model.pt").is_file()
