"""The same-machine runtime gate: ratios, verdicts, and a slowdown committed on top of a real clone."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT, project_settings, project_values
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.config import GateSettings
from ptychoreg.harness.runner import RecipeRun
from ptychoreg.harness.runtime_gate import format_verdict, memory_verdict, run_gate, verdict


def _times(*totals):
    return [{"train_s": t / 2, "infer_s": t / 2, "total_s": t} for t in totals]


def test_verdict_judges_the_median_of_pairwise_ratios():
    base = _times(10, 10, 10, 10, 10)
    # One outlier pair (a noisy neighbour during one run) does not move the median.
    result = verdict(base, _times(10.5, 9.8, 30, 10.2, 10.1), max_slowdown=0.12)
    assert result["total"]["median_ratio"] == pytest.approx(1.02) and result["total"]["ok"]
    assert result["total"]["max_ratio"] == pytest.approx(3.0)
    slower = verdict(base, _times(13, 13.2, 12.9, 13.1, 13), max_slowdown=0.12)
    assert not slower["total"]["ok"] and slower["total"]["median_ratio"] == pytest.approx(1.3)


def test_memory_verdict_fails_ten_percent_on_the_train_peak():
    base = [{"train_rss_mb": 384.0 + d, "infer_rss_mb": 300.0} for d in (0, 1, -1, 0.5, 0)]
    grown = [{"train_rss_mb": 1.1 * b["train_rss_mb"], "infer_rss_mb": 300.5} for b in base]
    result = memory_verdict(base, grown, max_growth=0.05)
    assert not result["train memory"]["ok"] and result["train memory"]["median_ratio"] == pytest.approx(1.1)
    assert result["infer memory"]["ok"] and result["infer memory"]["base_median_mb"] == 300.0
    table = format_verdict({**verdict(_times(10, 10), _times(10, 10), 0.12), **result})
    assert "train memory" in table and "384 MB" in table and "<= 1.05" in table and "FAIL" in table


def test_settings_from_params():
    assert GateSettings.from_params(project_values("runtime_gate") | {"pairs": 3}).pairs == 3
    with pytest.raises(PtychoError, match="runtime_gate.speed"):
        GateSettings.from_params(project_values("runtime_gate") | {"speed": 1})
    with pytest.raises(PtychoError, match="runtime_gate.max_slowdown': must be > 0"):
        GateSettings.from_params(project_values("runtime_gate") | {"max_slowdown": 0})


# A commit that makes every training process 3 s slower (train takes ~2-3 s here: >= +100 %) and keeps
# 64 MB more alive in it: what a leak of each batch's graph does.
SLOWER_AND_LARGER = """

_run_before_change = run


def run(name, body, argv=None):
    import time as _time

    kept = b"\\x01" * (64 << 20) if name == "ptycho-train" else b""  # every page written, so resident
    code = _run_before_change(name, body, argv) + 0 * len(kept)
    until = _time.perf_counter() + (3.0 if name == "ptycho-train" else 0.0)
    while _time.perf_counter() < until:
        pass
    return code
"""


@pytest.mark.slow
def test_a_committed_slowdown_and_memory_growth_fail_the_gate(tmp_path, fixture_path):
    """A clone of this repository with a commit on top that makes train 100 % slower and 64 MB larger: the
    gate, run in the clone against HEAD~1 (from this large test process), fails train's time and memory
    and passes infer's (unchanged)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    common = clone / "src/ptychoreg/core/cli.py"
    common.write_text(common.read_text() + SLOWER_AND_LARGER)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "commit", "-q", "-am", "slower and larger training"], cwd=clone, check=True, env=env)
    regression = RecipeRun.of(str(clone / "params.yaml"), "regression")
    result, load = run_gate(str(fixture_path), regression, project_settings("runtime_gate", base="HEAD~1", pairs=2, max_slowdown=0.5),
                            head=clone, log=lambda _: None)
    assert set(load) >= {"others_share", "steal_share", "busy"}
    assert not result["train"]["ok"] and result["train"]["median_ratio"] > 1.5
    assert result["infer"]["ok"]
    assert not result["train memory"]["ok"] and result["train memory"]["median_ratio"] > 1.1, result["train memory"]
    assert result["infer memory"]["ok"], result["infer memory"]
    assert subprocess.run(["git", "worktree", "list"], cwd=clone, capture_output=True, text=True).stdout.count("\n") == 1


def test_an_intended_slowdown_is_accepted_by_a_commit_trailer(tmp_path):
    from ptychoreg.harness.runtime_gate import accepted_slowdown

    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "faster"], cwd=tmp_path, check=True, env=env)
    assert accepted_slowdown(tmp_path) is None
    message = "Use torch.optim.Adam\n\nRuntime-Gate: accept +0.4 s per process for the standard optimiser\n"
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", message], cwd=tmp_path, check=True, env=env)
    assert accepted_slowdown(tmp_path) == "+0.4 s per process for the standard optimiser"


def test_the_error_rate_study_slows_a_side_without_editing_its_source(tmp_path):
    """slowdown_site: a side's commands burn the given extra seconds at exit; its source stays as it was."""
    import sys
    import time

    from ptychoreg.harness.runtime_gate import slowdown_site

    script = tmp_path / "train.py"
    script.write_text("print('trained')\n")
    site = slowdown_site(tmp_path / "site", {"train": 0.3})
    started = time.perf_counter()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(site)))
    assert out.stdout == "trained\n" and time.perf_counter() - started >= 0.3
    assert script.read_text() == "print('trained')\n"
