"""Parameter sweeps as DVC experiments: two sensitivity grids of one cell each, queued with `dvc exp run
--queue`, run by `dvc queue start --jobs 2`, compared with `dvc exp show`, in a fresh clone (the README's
worked example)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import clone_sharing_cache, dvc

pytestmark = pytest.mark.slow
CELLS = (16, 32)  # n_images of the two experiments' one-cell grids; one epoch, one repeat


def test_a_queued_two_cell_sweep_runs_and_compares(tmp_path):
    clone = clone_sharing_cache(tmp_path / "repo")  # the canonical data, pulled
    names = [f"sweep-n{n}" for n in CELLS]
    for name, n in zip(names, CELLS):
        dvc("exp", "run", "--queue", "sensitivity_table", "-n", name, "-S", "sensitivity.max_epochs=[1]",
             "-S", f"sensitivity.n_images=[{n}]", "-S", "sensitivity.repeats=1", cwd=clone)
    try:
        dvc("queue", "start", "--jobs", "2", cwd=clone)
        for name in names:
            dvc("queue", "logs", "--follow", name, cwd=clone)  # returns when that experiment has ended
        status = dvc("queue", "status", cwd=clone).stdout
        for name in names:
            assert any(name in line and "Success" in line for line in status.splitlines()), status
    finally:
        subprocess.run([sys.executable, "-m", "dvc", "queue", "stop", "--kill"], cwd=clone, capture_output=True)

    shown = json.loads(dvc("exp", "show", "--json", cwd=clone).stdout)
    results = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            rev = experiment["revs"][0]
            params = rev["data"]["params"]["params.yaml"]["data"]["sensitivity"]
            metrics = rev["data"]["metrics"]
            results[rev["name"]] = (params, metrics)
    assert set(results) == set(names)
    for name, n in zip(names, CELLS):
        params, metrics = results[name]
        assert params["n_images"] == [n] and params["max_epochs"] == [1]
        cell = metrics[f"metrics/sensitivity/e1_n{n}.json"]["data"]
        assert cell["n_images"] == n and cell["settings"]["repeats"] == 1 and cell["total_s"]["median"] > 0
    # The workspace is untouched: experiments live in their own refs until applied.
    assert dvc("params", "diff", cwd=clone).stdout.strip() == ""
