"""Outputs that travel (ptychoreg.harness.outputs, ptycho-outputs): what dvc.yaml labels a host measurement,
that everything else is rebuilt to the same bytes, and the check that compares what DVC rebuilt with dvc.lock."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, clone_sharing_cache
from ptychoreg.harness.outputs import locked_md5s, pipeline, stages_with

LOCK = """schema: '2.0'
stages:
  make_fixture:
    cmd: python -m ptychoreg.cli.fixture
    outs:
    - path: tests/fixtures/f.npz
      hash: md5
      md5: 0123456789abcdef0123456789abcdef
      size: 10
"""


def test_locked_md5s():
    assert locked_md5s(LOCK) == {("make_fixture", "tests/fixtures/f.npz"): "0123456789abcdef0123456789abcdef"}
    assert locked_md5s("") == {}


def test_no_host_measurement_is_cached_and_the_labels_say_which_are():
    order, outputs = pipeline(ROOT)
    by_path = {o.path: o for o in outputs}
    travel, timed = stages_with(order, outputs, "travel"), stages_with(order, outputs, "timing")
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        cached = {str(o.def_path) for s in repo.index.stages if getattr(s, "cmd", None) for o in s.outs if o.use_cache}
    assert cached and all(by_path[p].travels for p in cached), "a cached output must be the same bytes everywhere"
    for path in ("metrics/regression.json", "metrics/quality_timing.json", "metrics/reference_timing.json",
                 "metrics/golden_spread.json", "metrics/mutation.json", "reports/regression.md",
                 "metrics/quality/pretrain_timing.json", "metrics/quality/refine_timing.json"):
        assert not by_path[path].travels, path
    for path in ("outputs/quality/pretrain", "outputs/quality/refine", "outputs/quality/score", "outputs/fixture/train", "metrics/quality.json", "metrics/reference.json",
                 "metrics/fixture.json", "reports/quality/amplitude.png"):
        assert by_path[path].travels, path
    assert order.index("make_fixture") < order.index("train_fixture") < order.index("infer_fixture")
    assert {"make_fixture", "quality_pretrain", "quality_refine", "quality", "reference", "plots_quality"} <= set(travel)
    assert "regress" not in travel
    # What a new machine re-measures (./tasks remeasure): time and memory only, not what its CPU offers.
    assert {"regress", "report", "sensitivity_table"} <= set(timed) and any(s.startswith("sensitivity@") for s in timed)
    assert not {"golden_spread", "mutation", "quality_pretrain", "quality_refine", "quality", "reference"} & set(timed)
    assert timed.index("regress") < timed.index("report")  # re-measured upstream first


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


WALL_CLOCK_KEYS = {"seconds", "train_s", "infer_s", "seconds_per_epoch", "built_utc", "build_seconds", "peak_rss_mb"}


def _keys(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | set().union(*(_keys(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_keys(v) for v in obj)) if obj else set()
    return set()


@pytest.mark.slow
def test_the_quality_recipe_rebuilt_twice_gives_the_same_bytes(fixture_path, tmp_path):
    """The quality stage's code path (two phases on 2 threads, the gridsize-2 merge, inference, scoring),
    on the fixture with one epoch per phase: every file and every figure the same twice; no wall clock in
    the output folder or the metrics, all of it in the timing record."""
    from ptychoreg.core.config import load_section, read_params
    from ptychoreg.harness.quality import score_quality, timing as quality_timing
    from ptychoreg.harness.runner import QUALITY_PHASES, RecipeRun, train_phases

    params = str(ROOT / "params.yaml")
    settings = load_section("quality", read_params(params)).model_copy(update={"enforce": False})
    recipes = [RecipeRun.of(params, name) for name in QUALITY_PHASES]
    runs = []
    for i in range(2):
        phases = train_phases(str(fixture_path), tmp_path / f"q{i}", recipes, [1, 1])
        metrics, score = score_quality(str(fixture_path), [p for p, _ in phases], settings, tmp_path / f"q{i}" / "score",
                                       log=lambda _: None)
        runs.append((metrics, quality_timing([t for _, t in phases], metrics["phases"], score)))
    # Each phase's log and timings stay beside its folder (`<recipe>-logs`), out of what a stage caches.
    first, second = ({k: v for k, v in _digests(tmp_path / f"q{i}").items() if "-logs/" not in k} for i in range(2))
    assert first == second
    assert {"quality_pretrain/model.pt", "quality_pretrain/history.json", "quality_refine/model.pt",
            "quality_refine/history.json", "score/reconstruction.npz", "score/summary.json", "score/quality.json"} <= set(first)
    assert runs[0][0] == runs[1][0]  # the metrics
    for name in ("quality_refine/history.json", "score/summary.json", "score/quality.json", "quality_pretrain/history.json"):
        assert not _keys(json.loads((tmp_path / "q0" / name).read_text())) & WALL_CLOCK_KEYS, name
    assert not _keys(runs[0][0]) & WALL_CLOCK_KEYS
    timing = runs[0][1]
    assert timing["train_s"] > 0 and len(timing["phases"]) == 2 and timing["phases"][1]["seconds_per_epoch"] > 0


@pytest.mark.slow
def test_the_reference_and_the_plots_rebuilt_twice_give_the_same_bytes(fixture_path, tmp_path):
    from conftest import run_cli

    for i in range(2):
        proc = run_cli("reference", "--data", fixture_path, "--out-dir", tmp_path / f"r{i}", "--metrics-out",
                       tmp_path / f"r{i}.json", "--timing-out", tmp_path / f"r{i}-timing.json", cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        proc = run_cli("plots", "--run-dir", tmp_path / f"r{i}", "--label", "ePIE", "--data", fixture_path,
                       "--out-dir", tmp_path / f"p{i}", cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
    for a, b in ((tmp_path / "r0", tmp_path / "r1"), (tmp_path / "p0", tmp_path / "p1")):
        assert _digests(a) == _digests(b) and _digests(a)
    assert (tmp_path / "r0.json").read_bytes() == (tmp_path / "r1.json").read_bytes()
    assert "seconds" in json.loads((tmp_path / "r0-timing.json").read_text())


# ---- the check command, in a fresh clone --------------------------------------------------------------

def _run(args, cwd, env):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)


@pytest.fixture
def clone(tmp_path):
    """A fresh clone of HEAD that shares this checkout's DVC cache, its outputs checked out from it, and its
    own src/ first on the path (the stages run the clone's code)."""
    repo = clone_sharing_cache(tmp_path / "repo")
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=str(repo / "src"))
    proc = _run([sys.executable, "-m", "dvc", "checkout", "make_fixture", "train_fixture", "infer_fixture"], repo, env)
    if proc.returncode != 0:
        pytest.fail(f"the outputs HEAD's dvc.lock records are not in the cache (run `dvc repro` and commit dvc.lock): {proc.stderr}")
    return repo, env


@pytest.mark.slow
def test_what_dvc_rebuilds_is_checked_against_the_lock_and_a_tampered_output_or_lock_fails(clone):
    from ptychoreg.harness import canary

    repo, env = clone
    check = [sys.executable, "-m", "ptychoreg.cli.outputs", "check"]
    stages = _run([sys.executable, "-m", "ptychoreg.cli.outputs", "stages", "travel"], repo, env).stdout.split()
    assert stages.index("train_fixture") < stages.index("infer_fixture") and "regress" not in stages

    assert _run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "train_fixture", "infer_fixture"], repo, env).returncode == 0
    rebuilt = _run(check, repo, env)
    if not canary.check()[0]:
        assert "OUTSIDE the pinned set" in rebuilt.stdout
    else:
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "outputs that travel match dvc.lock at HEAD" in rebuilt.stdout and "DIFFERS" not in rebuilt.stdout
        # The clone checked out the fixture's stages only: the rest is absent, not different.
        assert "not in the workspace, not compared: " in rebuilt.stdout and "quality: outputs/quality/score" in rebuilt.stdout

    summary = repo / "outputs/fixture/infer/summary.json"
    summary.write_text(summary.read_text().replace('"positions"', '"positions "'))
    tampered = _run(check, repo, env)
    assert tampered.returncode == 1, tampered.stdout
    assert "infer_fixture: outputs/fixture/infer: DIFFERS: the workspace file does not match dvc.lock" in tampered.stdout

    lock = (repo / "dvc.lock").read_text()
    recorded = locked_md5s(lock)[("infer_fixture", "outputs/fixture/infer")]
    (repo / "dvc.lock").write_text(lock.replace(recorded, "0" * 32 + ".dir"))
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "a lock this machine cannot build"],
                   cwd=repo, check=True)
    assert _run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "infer_fixture"], repo, env).returncode == 0
    wrong = _run(check, repo, env)
    assert wrong.returncode == 1 and f"DIFFERS: md5 {recorded}, dvc.lock at HEAD has {'0' * 32}.dir" in wrong.stdout, wrong.stdout
