"""The one way the harness measures (ptychoreg.harness.timing): records, spreads, ratios, the rotation of
interleaved sides, and a real command's CPU time and peak memory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ptychoreg.core.config import Config
from ptychoreg.harness import timing
from ptychoreg.harness.runner import RecipeRun, RunRecord, run_cli
from ptychoreg.harness.timing import Side, interleaved, ratios, record, spread, summary


def test_spread_statistics():
    stats = spread([1.0, 2.0, 3.0])
    assert stats == {"median": 2.0, "min": 1.0, "max": 3.0, "cv": 0.5, "n": 3}
    assert spread([4.0])["cv"] == 0.0


def test_a_record_keeps_each_command_s_own_figures_and_a_summary_keeps_the_keys():
    train = RunRecord("train", 3.0, 400.0, Path("t.log"), cpu_s=5.5)
    infer = RunRecord("infer", 1.0, 250.0, Path("i.log"), cpu_s=1.5)
    one = record(train, infer)
    assert one == {"train_s": 3.0, "infer_s": 1.0, "total_s": 4.0, "train_cpu_s": 5.5, "infer_cpu_s": 1.5,
                   "train_rss_mb": 400.0, "infer_rss_mb": 250.0}
    many = summary([one, {**one, "train_s": 5.0, "infer_rss_mb": 260.0}])
    assert set(many) == set(one) and many["train_s"]["median"] == 4.0 and many["infer_rss_mb"]["max"] == 260.0
    assert ratios([one], [{**one, "train_s": 6.0}], ("train_s", "infer_s")) == {"train_s": [2.0], "infer_s": [1.0]}


def test_interleaved_rounds_rotate_the_order_after_one_warm_up_each(monkeypatch, tmp_path):
    calls = []

    def fake(data, out, run, train_args=(), infer_args=(), env=None, timings=True):
        calls.append(env.get("SIDE"))
        return (RunRecord("train", 1.0, 10.0, out / "t.log"), RunRecord("infer", 1.0, 10.0, out / "i.log"))

    monkeypatch.setattr(timing, "run_train_infer", fake)
    sides = [Side("a", extra_env=(("SIDE", "a"),)), Side("b", extra_env=(("SIDE", "b"),))]
    records = interleaved(sides, 3, "data.npz", RecipeRun(None, "regression", Config()), log=lambda _: None)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert [len(records[name]) for name in ("a", "b")] == [3, 3]


def test_a_side_runs_its_own_tree_s_code_and_params(tmp_path):
    (tmp_path / "params.yaml").write_text("recipes: {}\n")
    side = Side("base", tmp_path, extra_env=(("X", "1"),), train_args=("--max-epochs", "1"))
    assert side.env() == {"PYTHONPATH": str(tmp_path / "src"), "X": "1"}
    run = RecipeRun("params.yaml", "regression", Config())
    assert side.run(run).params == str(tmp_path / "params.yaml") and Side("here").run(run) is run
    assert Side("here").env() == {}


@pytest.mark.skipif(sys.platform != "linux", reason="peak RSS from wait4 in KiB is Linux's")
def test_a_command_s_cpu_time_includes_its_children(tmp_path):
    """The CPU seconds of a command that spends them in a child process are counted."""
    script = tmp_path / "burn.py"
    script.write_text("import subprocess, sys, time\n"
                      "subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
                      "while time.process_time() - t < 0.3: pass'])\n")
    burned = run_cli("burn", [], tmp_path / "burn.log", 1, env={"PYTHONPATH": str(tmp_path)})
    assert burned.cpu_s >= 0.3 and burned.peak_rss_mb > 0
