"""What each training budget buys, as DVC experiments (ptychoreg.harness.quality_curve, ptycho-quality-curve):
the queued settings, the points read back from `dvc exp show`, and (slow) two real budgets queued and run
by DVC in a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import clone_sharing_cache, dvc
from ptychoreg.harness.quality_curve import experiment_name, points, queue_args, scaled_epochs


def test_a_budget_scales_both_phases_epochs_and_records_without_enforcing():
    assert scaled_epochs([40, 13], 0.5) == [20, 6] and scaled_epochs([40, 13], 0.01) == [1, 1]
    with pytest.raises(ValueError, match="positive"):
        scaled_epochs([40, 13], 0)
    args = queue_args([40, 13], 0.25)
    assert args[:6] == ["exp", "run", "--queue", "quality", "-n", "budget-x0.25"]
    sets = [args[i + 1] for i, a in enumerate(args) if a == "-S"]
    assert sets == ["recipes.quality_pretrain.train.max_epochs=10", "recipes.quality_refine.train.max_epochs=3",
                    "quality.enforce=false"]


def _experiment(name, epochs, train_s, ssim, error=None):
    recipes = {recipe: {"train": {"max_epochs": e}} for recipe, e in zip(("quality_pretrain", "quality_refine"), epochs)}
    quality = {"quality": {"amplitude": {"ssim": ssim, "correlation": 0.9}, "phase": {"ssim": ssim + 0.1, "correlation": 0.8},
                           "frc_mean": 0.5}}
    data = {} if error else {"params": {"params.yaml": {"data": {"recipes": recipes}}},
                             "metrics": {"metrics/quality.json": {"data": quality},
                                         "metrics/quality_timing.json": {"data": {"train_s": train_s}}}}
    return {"revs": [{"rev": "abc", "name": name, "error": error, "data": data}]}


def test_points_are_the_finished_budget_experiments_by_scale():
    shown = [{"rev": "workspace", "data": {}},
             {"rev": "f00", "name": "main", "experiments": [
                 _experiment("budget-x2", [80, 26], 530.04, 0.8), _experiment("budget-x0.5", [20, 6], 131.44, 0.6),
                 _experiment("sweep-n16", [1, 1], 5.0, 0.1), _experiment("budget-x1", [40, 13], 0, 0, error={"msg": "failed"})]}]
    found = points(shown)
    assert [p["scale"] for p in found] == [0.5, 2.0]
    assert found[0] == {"scale": 0.5, "epochs": [20, 6], "train_s": 131.4, "amplitude_ssim": 0.6, "phase_ssim": 0.7,
                        "amplitude_correlation": 0.9, "phase_correlation": 0.8, "frc_mean": 0.5}
    assert experiment_name(0.5) == "budget-x0.5" and points([]) == []


@pytest.mark.slow
def test_two_budgets_run_as_queued_experiments_and_make_the_curve(tmp_path):
    """The commands ./tasks quality-curve runs, at two tiny budgets (1 + 1 and 2 + 1 epochs), in a fresh
    clone sharing this checkout's DVC cache: DVC runs each experiment, the points come back ascending."""
    clone = clone_sharing_cache(tmp_path / "repo")
    command = [sys.executable, "-m", "ptychoreg.cli.quality_curve"]
    queued = subprocess.run([*command, "queue", "--scales", "0.05", "0.02"], cwd=clone, capture_output=True, text=True)
    assert queued.returncode == 0, queued.stderr
    names = queued.stdout.split()
    assert names == ["budget-x0.02", "budget-x0.05"]
    try:
        dvc("exp", "run", "--run-all", "--jobs", "1", cwd=clone)  # returns when the queue has run
    finally:
        subprocess.run([sys.executable, "-m", "dvc", "queue", "stop", "--kill"], cwd=clone, capture_output=True)
    out = tmp_path / "curve.json"
    collected = subprocess.run([*command, "collect", "--metrics-out", str(out)], cwd=clone, capture_output=True, text=True)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    curve = json.loads(out.read_text())["points"]
    assert [(p["scale"], p["epochs"]) for p in curve] == [(0.02, [1, 1]), (0.05, [2, 1])]
    assert all(p["train_s"] > 0 and 0 < p["amplitude_ssim"] < 1 for p in curve)
    assert dvc("params", "diff", cwd=clone).stdout.strip() == ""  # the workspace is untouched
