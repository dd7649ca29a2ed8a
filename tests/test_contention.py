"""harness.contention: epoch times alone and beside a busy process, per OpenMP wait policy."""

import json
import os

import pytest

from ptychoreg.core import numerics
from ptychoreg.harness import contention
from ptychoreg.harness.runner import RecipeRun, cpu_env


def _spread(median):
    return {"median": median, "min": median * 0.9, "max": median * 1.1, "cv": 0.05, "n": 3}


def test_the_plot_draws_every_case_and_policy(tmp_path):
    result = {label: {"policies": {name: {"idle_s": _spread(1.0), "busy_s": _spread(2.0 + i)}
                                   for i, name in enumerate(contention.POLICIES)}} for label in ("a", "b", "c")}
    contention.plot(result, tmp_path / "sub" / "contention.png")
    assert (tmp_path / "sub" / "contention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_command_runs_with_the_passive_wait_unless_the_user_chose():
    """The policy reaches the children the harness starts; a user's own choice is kept; the 'before' side of
    the benchmark overrides it with libgomp's default spin count."""
    assert cpu_env(2)["OMP_WAIT_POLICY"] == "PASSIVE"
    assert numerics.env()["OMP_WAIT_POLICY"] == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    assert cpu_env(2, contention.DEFAULT_SPIN)["GOMP_SPINCOUNT"] == "300000"
    assert numerics.env(extra={"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.slow
def test_the_benchmark_measures_both_states_of_each_policy(tmp_path, fixture_path):
    """One repeat of the regression recipe: every policy timed idle and busy, the idle runs on a machine the
    benchmark saw quiet enough to be called idle, the record written."""
    run = RecipeRun.of("params.yaml", "regression")
    result = contention.measure([("regression", str(fixture_path), run, 3, None)], 1, tmp_path, log=lambda _: None)
    case = result["regression"]
    assert case["threads"] == run.config.train.threads and set(case["policies"]) == set(contention.POLICIES)
    for r in case["policies"].values():
        assert r["idle_s"]["median"] > 0 and r["busy_s"]["median"] > 0 and r["busy_over_idle"]["n"] == 1
    json.dumps(result)  # the record is plain JSON
