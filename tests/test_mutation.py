"""The mutation harness: mutants applied in-process and undone, every required bug class present, a
harmless change escapes and a real bug is caught, and the working tree is never touched."""

from __future__ import annotations

import hashlib
import json

import pytest

from conftest import CANONICAL, FIXTURE_METRICS, ROOT
from ptychoreg.harness import mutation
from ptychoreg.harness.mutants import MUTANTS, Mutant
from ptychoreg.harness.mutation import applied

REQUIRED_CLASSES = {
    "diffraction rounded or quantised", "patterns paired with the wrong coordinates",
    "stitching mirrored, transposed or off by one pixel", "sub-pixel shift with the wrong sign",
    "float64 reaching the model", "an unseeded random choice", "a setting that never reaches the run",
    "the probe mis-scaled or conjugated", "the loss in the wrong units", "the ambiguous layout decided wrongly",
    "inference on untrained weights", "a 30 % slowdown", "memory growth in training", "memory growth in inference",
}


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_every_required_bug_class_has_a_mutant():
    assert {m.bug_class for m in MUTANTS} == REQUIRED_CLASSES
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)


def test_applied_replaces_every_binding_and_restores_it():
    import ptychoreg.core.geometry
    import ptychoreg.harness.regress
    import ptychoreg.core.inference

    original = ptychoreg.core.geometry.stitch
    mirrored = next(m for m in MUTANTS if m.name == "stitch-mirrored")
    with applied(mirrored):
        assert ptychoreg.core.geometry.stitch is not original
        assert ptychoreg.core.inference.stitch is ptychoreg.core.geometry.stitch is ptychoreg.harness.regress.stitch
    assert ptychoreg.core.geometry.stitch is original and ptychoreg.core.inference.stitch is original


def test_applied_restores_after_an_exception():
    import ptychoreg.core.model.physics

    original = ptychoreg.core.model.physics.poisson_nll
    units = next(m for m in MUTANTS if m.name == "loss-amplitude-units")
    with pytest.raises(RuntimeError), applied(units):
        raise RuntimeError("interrupted")
    assert ptychoreg.core.model.physics.poisson_nll is original


@pytest.mark.slow
def test_a_harmless_change_escapes_and_a_bug_is_caught(tmp_path, fixture_path):
    from ptychoreg.core.config import load_section, read_params
    from ptychoreg.harness.runner import RecipeRun

    params = read_params(ROOT / "params.yaml")
    setup = mutation.RunSetup(
        canonical=str(CANONICAL), fixture=fixture_path, fixture_spec=load_section("fixture", params),
        expected_sha256=json.loads(FIXTURE_METRICS.read_text())["sha256"],
        run=RecipeRun.of(str(ROOT / "params.yaml"), "regression"), golden_test=str(ROOT / "tests/test_golden.py"))
    # A refactoring that changes nothing a user can see: the regression must not flag it.
    harmless = Mutant("harmless", "none", "a wrapper that changes nothing", "ptychoreg.core.model.physics", "poisson_nll",
                      lambda f: lambda *a, **k: f(*a, **k))
    probe = next(m for m in MUTANTS if m.name == "probe-scaled")
    before = _source_digest()
    result = mutation.run_mutants(setup, (harmless, probe), max_slowdown=0.12, pairs=3, work=tmp_path,
                                  log=lambda _: None)
    assert result["escaped"] == ["harmless"] and result["caught"] == 1
    assert "golden:figures" in result["results"]["probe-scaled"]["caught_by"]
    assert _source_digest() == before  # mutants never edit the working tree


@pytest.mark.slow
def test_memory_mutants_grow_their_own_command_in_a_fresh_process(tmp_path, fixture_path):
    """What the mutation stage's memory check measures: each memory mutant, applied in a fresh process,
    raises the peak of the command it lives in beyond the gate's limit and leaves the other one within it.
    Medians of 3 pairs: one pair's untouched command moved by 4 % on a CI machine (noise, not the mutant)."""
    from ptychoreg.core.config import load_section, read_params
    from ptychoreg.harness.runner import RecipeRun

    params = read_params(ROOT / "params.yaml")
    setup = mutation.RunSetup(canonical=str(CANONICAL), fixture=fixture_path, fixture_spec=None, expected_sha256="",
                              run=RecipeRun.of(str(ROOT / "params.yaml"), "regression"), golden_test="")
    limit = 1 + load_section("runtime_gate", params).max_memory_growth
    training = mutation.memory_ratios(setup, "training-keeps-activations", 3, tmp_path / "t")
    assert training["train"] > limit > training["infer"], training
    inference = mutation.memory_ratios(setup, "stitch-materialises-canvases", 3, tmp_path / "i")
    assert inference["infer"] > limit > inference["train"], inference
