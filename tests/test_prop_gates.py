"""The gates' rules on both sides of every limit (issue #33): the same-machine runtime gate's time and memory
verdicts (harness/runtime_gate.py) and the drift gate (harness/drift.py, with DriftSettings).

Boundaries use dyadic numbers (8 -> 9 is a ratio of exactly 1.125), so "at the limit passes" is exact.
"""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import project_settings
from ptychoreg.harness.drift import evaluate
from ptychoreg.harness.runtime_gate import memory_verdict, verdict

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None)
seconds = st.floats(0.05, 500.0, allow_nan=False)


# Ratios at least 1 % away from each limit tested: the float rounding of head / base never decides.
def _away(limit):
    return st.floats(0.2, 3.0).filter(lambda r: abs(r - (1 + limit)) > 0.01 * (1 + limit))


# ---- runtime gate: time -------------------------------------------------------------------------------

def _runs(**parts):
    """Pairs of runs: parts maps train/infer/total (seconds) or *_rss_mb to a list of values, one per run;
    each run a record of harness.timing."""
    n = len(next(iter(parts.values())))
    return [{(k if k.endswith("_mb") else f"{k}_s"): v[i] for k, v in parts.items()} for i in range(n)]


@FAST
@given(base=st.lists(st.tuples(seconds, seconds), min_size=1, max_size=6), limit=st.floats(0.02, 0.5),
       data=st.data())
def test_time_verdict_fails_exactly_the_parts_whose_ratio_exceeds_the_limit(base, limit, data):
    """Catches a time verdict on base/head, on another part's ratios, or against 1 - limit."""
    r_train, r_infer = data.draw(_away(limit)), data.draw(_away(limit))
    train = [b[0] for b in base]
    infer = [b[1] for b in base]
    base_runs = _runs(train=train, infer=infer, total=[t + i for t, i in zip(train, infer)])
    head_train, head_infer = [t * r_train for t in train], [i * r_infer for i in infer]
    head_runs = _runs(train=head_train, infer=head_infer, total=[t + i for t, i in zip(head_train, head_infer)])
    result = verdict(base_runs, head_runs, limit)
    assert result["train"]["median_ratio"] == pytest.approx(r_train, rel=1e-9)
    assert result["infer"]["median_ratio"] == pytest.approx(r_infer, rel=1e-9)
    assert result["train"]["ok"] == (r_train <= 1 + limit)
    assert result["infer"]["ok"] == (r_infer <= 1 + limit)
    total_ratio = result["total"]["median_ratio"]
    assert min(r_train, r_infer) * (1 - 1e-9) <= total_ratio <= max(r_train, r_infer) * (1 + 1e-9)
    assert result["total"]["ok"] == (total_ratio <= 1 + limit)
    assert result["train"]["base_median_s"] == statistics.median(train)
    assert result["infer"]["head_median_s"] == statistics.median(head_infer)


def test_time_verdict_boundary_and_direction():
    """Catches `<` for `<=` at 1 + limit and a ratio taken base/head (faster failing, slower passing)."""
    base = _runs(train=[8.0] * 3, infer=[4.0] * 3, total=[12.0] * 3)
    at = _runs(train=[9.0] * 3, infer=[4.5] * 3, total=[13.5] * 3)  # exactly 1.125
    above = _runs(train=[9.0 + 2**-10] * 3, infer=[4.0] * 3, total=[13.0 + 2**-10] * 3)
    faster = _runs(train=[4.0] * 3, infer=[2.0] * 3, total=[6.0] * 3)
    slower = _runs(train=[16.0] * 3, infer=[8.0] * 3, total=[24.0] * 3)
    assert all(r["ok"] for r in verdict(base, at, 0.125).values())
    result = verdict(base, above, 0.125)
    assert not result["train"]["ok"] and result["infer"]["ok"] and result["total"]["ok"]
    assert all(r["ok"] and r["median_ratio"] == 0.5 for r in verdict(base, faster, 0.125).values())
    assert not any(r["ok"] for r in verdict(base, slower, 0.125).values())
    assert verdict(base, slower, 0.125)["train"]["head_median_s"] == 16.0
    assert verdict(base, slower, 0.125)["train"]["base_median_s"] == 8.0


def test_time_verdict_pairs_runs_in_order_and_takes_the_median_of_the_ratios():
    """Catches a ratio of medians instead of the median of pairwise ratios (+50 % vs -50 % here)."""
    base = _runs(train=[1.0, 10.0, 10.0], infer=[1.0] * 3, total=[2.0, 11.0, 11.0])
    head = _runs(train=[1.5, 5.0, 20.0], infer=[1.0] * 3, total=[2.5, 6.0, 21.0])
    result = verdict(base, head, 0.12)["train"]
    assert result["median_ratio"] == 1.5 and not result["ok"]
    assert (result["min_ratio"], result["max_ratio"]) == (0.5, 2.0)


# ---- runtime gate: memory ------------------------------------------------------------------------------

@FAST
@given(base=st.lists(st.tuples(st.floats(50, 5000), st.floats(50, 5000)), min_size=1, max_size=6),
       limit=st.floats(0.01, 0.3), data=st.data())
def test_memory_verdict_judges_each_command_on_its_own_peak(base, limit, data):
    """Catches a memory verdict on base/head, on the other command's peak, or with a wrong limit."""
    r_train, r_infer = data.draw(_away(limit)), data.draw(_away(limit))
    base_runs = _runs(train_rss_mb=[b[0] for b in base], infer_rss_mb=[b[1] for b in base])
    head_runs = _runs(train_rss_mb=[b[0] * r_train for b in base], infer_rss_mb=[b[1] * r_infer for b in base])
    result = memory_verdict(base_runs, head_runs, limit)
    assert set(result) == {"train memory", "infer memory"}
    for part, ratio in (("train memory", r_train), ("infer memory", r_infer)):
        assert result[part]["median_ratio"] == pytest.approx(ratio, rel=1e-9)
        assert result[part]["ok"] == (ratio <= 1 + limit), (part, ratio, limit)
        assert result[part]["limit"] == pytest.approx(1 + limit)


def test_memory_verdict_boundary_drop_and_rise():
    """Catches `<` for `<=` at the memory limit and a memory drop that fails (or a rise that passes)."""
    base = _runs(train_rss_mb=[400.0] * 3, infer_rss_mb=[256.0] * 3)
    at = memory_verdict(base, _runs(train_rss_mb=[420.0] * 3, infer_rss_mb=[264.0] * 3), 0.05)  # 264/256 = 1.03125
    assert at["train memory"]["ok"] and at["infer memory"]["ok"]
    over = memory_verdict(base, _runs(train_rss_mb=[421.0] * 3, infer_rss_mb=[128.0] * 3), 0.05)
    assert not over["train memory"]["ok"] and over["infer memory"]["ok"]
    assert over["infer memory"]["median_ratio"] == 0.5
    assert (over["train memory"]["base_median_mb"], over["train memory"]["head_median_mb"]) == (400.0, 421.0)
    dropped = memory_verdict(base, _runs(train_rss_mb=[200.0] * 3, infer_rss_mb=[512.0] * 3), 0.05)
    assert dropped["train memory"]["ok"] and not dropped["infer memory"]["ok"]


# ---- drift gate ----------------------------------------------------------------------------------------

RUNTIME, MEMORY, QUALITY, FIXTURE = ("metrics/regression.json", "metrics/quality_timing.json", "metrics/quality.json",
                                     "metrics/fixture.json")


def _settings(runtime_rise=0.25, memory_rise=0.125, quality_drop=0.0625):
    return project_settings("drift", runtime_rise=runtime_rise, memory_rise=memory_rise, quality_drop=quality_drop,
                         runtime_metrics={RUNTIME: ["normalised.total.median"]},
                         memory_metrics={MEMORY: ["peak_rss_mb"]},
                         quality_metrics={QUALITY: ["quality.phase.ssim"]})


def _diff(runtime=(8.0, 8.0), memory=(512.0, 512.0), quality=(0.75, 0.75), sha=("aa", "aa")):
    pair = lambda v: {"old": v[0], "new": v[1]}
    return {RUNTIME: {"normalised.total.median": pair(runtime)}, MEMORY: {"peak_rss_mb": pair(memory)},
            QUALITY: {"quality.phase.ssim": pair(quality)}, FIXTURE: {"sha256": pair(sha)}}


def _verdicts(findings) -> dict[str, bool]:
    return {f.rule: f.ok for f in findings}


@FAST
@given(old=st.floats(0.01, 1e4), runtime_limit=st.floats(0.05, 0.5), memory_limit=st.floats(0.02, 0.3), data=st.data())
def test_drift_rises_are_relative_to_the_old_value_and_each_rule_uses_its_own_limit(old, runtime_limit, memory_limit,
                                                                                     data):
    """Catches a rise relative to the new value, a fall failing, or memory judged by the runtime limit."""
    r_runtime, r_memory = data.draw(_away(runtime_limit)), data.draw(_away(memory_limit))
    findings = evaluate(_diff(runtime=(old, old * r_runtime), memory=(old, old * r_memory)), {},
                        _settings(runtime_rise=runtime_limit, memory_rise=memory_limit))
    verdicts = _verdicts(findings)
    assert verdicts["runtime"] == (r_runtime <= 1 + runtime_limit)
    assert verdicts["memory"] == (r_memory <= 1 + memory_limit)
    assert verdicts["quality"] and verdicts["fixture"]


@FAST
@given(old=st.floats(0.0, 1.0), change=st.floats(-0.5, 0.5), limit=st.floats(0.01, 0.2))
def test_drift_quality_fails_only_a_drop_beyond_the_limit(old, change, limit):
    """Catches a quality rule that fails an improvement (new - old) or ignores the limit."""
    if abs(abs(change) - limit) < 1e-6:
        return
    verdicts = _verdicts(evaluate(_diff(quality=(old, old + change)), {}, _settings(quality_drop=limit)))
    assert verdicts["quality"] == (-change <= limit)


def test_drift_boundaries_pass_and_just_beyond_fail():
    """Catches `<` for `<=` at each drift limit, and a memory or runtime drop that fails."""
    at = _diff(runtime=(8.0, 10.0), memory=(512.0, 576.0), quality=(0.75, 0.6875))
    assert all(f.ok for f in evaluate(at, {}, _settings()))
    beyond = _diff(runtime=(8.0, 10.0 + 2**-20), memory=(512.0, 576.0 + 2**-20), quality=(0.75, 0.6875 - 2**-20))
    assert _verdicts(evaluate(beyond, {}, _settings())) == {"runtime": False, "memory": False, "quality": False,
                                                           "fixture": True}
    dropped = _diff(runtime=(8.0, 2.0), memory=(512.0, 128.0), quality=(0.5, 0.99))
    assert all(f.ok for f in evaluate(dropped, {}, _settings()))


def test_drift_memory_between_its_limit_and_the_runtime_limit_fails():
    """Catches the memory rule judged against runtime_rise: +20 % memory must fail a 12.5 % limit."""
    findings = evaluate(_diff(runtime=(8.0, 9.6), memory=(500.0, 600.0)), {}, _settings())
    assert _verdicts(findings) == {"runtime": True, "memory": False, "quality": True, "fixture": True}
    memory = next(f for f in findings if f.rule == "memory")
    assert memory.metric == "quality_timing:peak_rss_mb" and "+20.0 %" in memory.change


@pytest.mark.parametrize("sha,params,ok", [
    (("aa", "bb"), {}, False),
    (("aa", "bb"), {"params.yaml": {"fixture.subset_size": {"old": 64, "new": 32}}}, True),
    (("aa", "bb"), {"params.yaml": {"recipes.regression.train.max_epochs": {"old": 2, "new": 3}}}, False),
    (("aa", "bb"), {"other.yaml": {"fixture.subset_size": {"old": 64, "new": 32}}}, False),
    (("aa", "aa"), {}, True),
    (("aa", "aa"), {"params.yaml": {"fixture.subset_size": {"old": 64, "new": 32}}}, True),
    ((None, "bb"), {}, True),  # no baseline yet: nothing to compare
])
def test_drift_fixture_sha_may_change_only_with_a_fixture_parameter(sha, params, ok):
    """Catches a fixture-sha rule that ignores, inverts or widens the fixture.* parameter excuse."""
    findings = evaluate(_diff(sha=sha), params, _settings())
    assert _verdicts(findings)["fixture"] is ok


@pytest.mark.parametrize("pair", [(None, 9.0), (8.0, None), (True, 9.0), (8.0, float("nan")), (0.0, 9.0),
                                  ("8", "9")])
def test_drift_uncomparable_runtime_is_reported_not_failed(pair):
    """Catches a rise rule that fails or crashes on a missing, bool, NaN, zero or string figure."""
    findings = evaluate(_diff(runtime=pair, memory=pair), {}, _settings())
    for f in findings:
        if f.rule in ("runtime", "memory"):
            assert f.ok and f.change == "not comparable"


# ---- the memory figures the gates are fed, end to end ------------------------------------------------

def _gate_with_runs(monkeypatch, tmp_path, base: dict, head: dict, pairs: int = 3):
    """run_gate on fabricated commands: every base run measures `base` ({train_s, infer_s, train_rss_mb,
    infer_rss_mb}), every head run `head`; no checkout, no process. Returns the gate's verdicts."""
    import contextlib
    from pathlib import Path

    from ptychoreg.core.config import Config, GateSettings
    from ptychoreg.harness import runtime_gate, timing
    from ptychoreg.harness.runner import RecipeRun, RunRecord

    @contextlib.contextmanager
    def checkout(rev, repo=Path(".")):
        yield tmp_path / "base-checkout"

    def train_and_infer(fixture, out, run, train_args=(), infer_args=(), env=None, timings=True):
        side = base if str(tmp_path / "base-checkout") in env["PYTHONPATH"] else head
        return (RunRecord("train", side["train_s"], side["train_rss_mb"], out / "train.log"),
                RunRecord("infer", side["infer_s"], side["infer_rss_mb"], out / "infer.log"))

    monkeypatch.setattr(runtime_gate, "worktree", checkout)
    monkeypatch.setattr(timing, "run_train_infer", train_and_infer)
    gate = GateSettings(base="HEAD~1", pairs=pairs, max_slowdown=0.12, max_memory_growth=0.05)
    result, _ = runtime_gate.run_gate("fixture.npz", RecipeRun(None, "regression", Config()), gate,
                                      head=tmp_path / "head", log=lambda _: None)
    return result


BASE_RUN = {"train_s": 8.0, "infer_s": 4.0, "train_rss_mb": 400.0, "infer_rss_mb": 256.0}


@pytest.mark.parametrize("train_growth,infer_growth,train_ok,infer_ok", [
    (1.08, 1.0, False, True),  # +8 % train memory: within the time limit (12 %), beyond memory's (5 %)
    (1.0, 1.08, True, False),  # +8 % infer memory alone: infer's own figure, not train's
    (1.0, 1.25, True, False),
    (1.04, 1.04, True, True),  # +4 %: within
    (0.5, 0.75, True, True),  # less memory passes
])
def test_the_runtime_gate_judges_each_command_s_own_peak_against_the_memory_limit(
        monkeypatch, tmp_path, train_growth, infer_growth, train_ok, infer_ok):
    """Catches a gate fed one command's peak for the other, or judging memory against the time limit."""
    head = {**BASE_RUN, "train_s": 8.5, "train_rss_mb": 400.0 * train_growth, "infer_rss_mb": 256.0 * infer_growth}
    result = _gate_with_runs(monkeypatch, tmp_path, BASE_RUN, head)
    assert result["train memory"]["ok"] is train_ok and result["infer memory"]["ok"] is infer_ok
    assert result["train memory"]["median_ratio"] == pytest.approx(train_growth)
    assert result["infer memory"]["median_ratio"] == pytest.approx(infer_growth)
    assert result["infer memory"]["head_median_mb"] == pytest.approx(256.0 * infer_growth)
    assert all(result[part]["ok"] for part in ("train", "infer", "total"))  # +6 % time: within 12 %


@pytest.mark.parametrize("failing", [None, "train", "infer", "total", "train memory", "infer memory"])
def test_the_runtime_gate_command_fails_on_any_failed_verdict(monkeypatch, failing):
    """Catches ptycho-runtime-gate exiting 0 when a memory verdict (or any one part) failed."""
    import signal

    from conftest import ROOT
    from ptychoreg.cli import runtime_gate as command
    from ptychoreg.harness import runtime_gate

    base = _runs(train=[8.0] * 3, infer=[4.0] * 3, total=[12.0] * 3, train_rss_mb=[400.0] * 3, infer_rss_mb=[256.0] * 3)
    head = {k.removesuffix("_s"): [r[k] for r in base] for k in base[0]}
    if failing is not None:
        key = {"train memory": "train_rss_mb", "infer memory": "infer_rss_mb"}.get(failing, failing)
        head[key] = [v * 2 for v in head[key]]
    head = _runs(**head)
    result = {**verdict(base, head, 0.12), **memory_verdict(base, head, 0.05)}
    assert [p for p, r in result.items() if not r["ok"]] == ([] if failing is None else [failing])
    monkeypatch.setattr(runtime_gate, "run_gate", lambda *a, **k: (result, {"busy": False}))
    monkeypatch.setattr(runtime_gate, "accepted_slowdown", lambda *a, **k: None)
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # the command's SIGTERM handler stays out of pytest
    code = command.main(["--fixture", "fixture.npz", "--params", str(ROOT / "params.yaml")])
    assert code == (0 if failing is None else command.EXIT_SLOWER)


@FAST
@given(phase_peaks=st.lists(st.floats(10, 1e5), min_size=1, max_size=3), scoring_peak=st.floats(10, 1e5))
def test_the_quality_stage_s_peak_memory_is_the_largest_of_all_its_processes(tmp_path_factory, phase_peaks,
                                                                              scoring_peak):
    """Catches the drift gate's memory figure (quality_timing's peak_rss_mb) leaving out a process: the
    scoring, or a training phase."""
    import json

    from ptychoreg.harness.quality import timing

    folder = tmp_path_factory.mktemp("timings")
    paths = []
    for i, peak in enumerate(phase_peaks):
        paths.append(folder / f"phase{i}.json")
        paths[-1].write_text(json.dumps({"phases": {"training": 2.0}, "epoch_seconds": [1.0], "peak_rss_mb": peak}))
    record = timing(paths, [{"gridsize": 1 + i} for i in range(len(paths))],
                    {"infer_s": 1.0, "infer_peak_rss_mb": scoring_peak})
    assert record["peak_rss_mb"] == max(phase_peaks + [scoring_peak])
    assert [row["peak_rss_mb"] for row in record["phases"]] == phase_peaks


def test_a_command_s_own_peak_memory_is_its_peak_not_what_it_holds_now():
    """Catches own_peak_rss_mb (what the timings files, and so the memory gates, are fed) reading the memory
    resident now instead of the peak: 128 MB held and released must still show in the peak."""
    import subprocess
    import sys

    code = ("from ptychoreg.core.phases import own_peak_rss_mb as peak\n"
            "before = peak()\n"
            "block = b'\\x01' * (128 << 20)\n"
            "del block\n"
            "print(peak() - before)\n")
    grown = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown > 120, grown
