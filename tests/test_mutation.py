"""The mutation harness: every mutant of the catalogue is a patch that applies to the tree as it is, every
required bug class has one, a copy holds the tree with the data linked, the working tree is never touched,
a harmless change escapes and a real bug is caught."""

from __future__ import annotations

import difflib
import hashlib
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURE_REL, ROOT, project_settings
from ptychoreg.core.errors import PtychoError
from ptychoreg.harness import mutation

CATALOGUE = mutation.read_catalogue(ROOT)
REQUIRED_CLASSES = {
    "diffraction rounded or quantised", "patterns paired with the wrong coordinates",
    "stitching mirrored, transposed or off by one pixel", "sub-pixel shift with the wrong sign",
    "float64 reaching the model", "an unseeded random choice", "a setting that never reaches the run",
    "the probe mis-scaled or conjugated", "the loss in the wrong units", "the ambiguous layout decided wrongly",
    "inference on untrained weights", "a 30 % slowdown", "memory growth in training", "memory growth in inference",
}


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted([*(root / "src").rglob("*.py"), *(root / "tests").glob("*.py"), root / "dvc.yaml",
                        root / "params.yaml"]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_every_required_bug_class_has_a_mutant():
    assert REQUIRED_CLASSES <= {m.bug_class for m in CATALOGUE}
    assert all(m.what for m in CATALOGUE)


@pytest.mark.parametrize("mutant", CATALOGUE, ids=lambda m: m.name)
def test_every_mutant_applies_to_the_tree_and_changes_it(mutant):
    """A patch that no longer applies is a mutant the stage cannot run: the catalogue follows the code."""
    check = subprocess.run(["git", "apply", "--check", "--numstat", str(mutant.patch)], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    added, removed = (sum(int(row.split()[i]) for row in check.stdout.splitlines()) for i in (0, 1))
    assert added + removed > 0


def test_a_patch_without_its_header_is_refused(tmp_path):
    (tmp_path / "mutants").mkdir()
    (tmp_path / "mutants" / "bare.patch").write_text("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(PtychoError, match="# class"):
        mutation.read_catalogue(tmp_path)


def test_a_copy_holds_the_tree_with_the_patch_and_the_data_linked(tmp_path):
    before = _tree_digest(ROOT)
    mutant = next(m for m in CATALOGUE if m.name == "probe-scaled")
    tree = mutation.scratch_tree(ROOT, tmp_path / "tree", mutant.patch)
    assert _tree_digest(ROOT) == before  # the working tree is never touched
    assert _tree_digest(tree) != before
    changed = [p for p in (tree / "src").rglob("*.py")
               if p.read_bytes() != (ROOT / p.relative_to(tree)).read_bytes()]
    assert [p.relative_to(tree).as_posix() for p in changed] == ["src/ptychoreg/core/contract.py"]
    assert (tree / FIXTURE_REL).is_symlink() and (tree / FIXTURE_REL).resolve() == (ROOT / FIXTURE_REL).resolve()
    assert not (tree / ".venv").exists()


def test_a_patch_that_does_not_apply_is_one_clear_error(tmp_path):
    stale = tmp_path / "stale.patch"
    stale.write_text("# class: x\n# what: y\n\n--- a/params.yaml\n+++ b/params.yaml\n@@ -1 +1 @@\n-no such line\n+z\n")
    with pytest.raises(PtychoError, match="does not apply"):
        mutation.scratch_tree(ROOT, tmp_path / "tree", stale)


@pytest.mark.slow
def test_a_harmless_change_escapes_and_a_bug_is_caught(tmp_path, fixture_path):
    """The regression's checks on copies: an edit no user can see is not flagged, a real bug is, and
    the working tree is the same afterwards."""
    source = (ROOT / "src/ptychoreg/core/geometry.py").read_text().splitlines(True)
    harmless = tmp_path / "harmless.patch"
    harmless.write_text("# class: none\n# what: a comment added\n\n" + "".join(difflib.unified_diff(
        source, source + ["# a comment\n"], "a/src/ptychoreg/core/geometry.py", "b/src/ptychoreg/core/geometry.py")))
    mutants = (mutation.Mutant("harmless", "none", "a comment added", harmless),
               next(m for m in CATALOGUE if m.name == "probe-scaled"))
    before = _tree_digest(ROOT)
    settings = mutation.Settings(project_settings("runtime_gate", pairs=3), fast_suite=False)
    result = mutation.run_mutants(ROOT, mutants, settings, tmp_path / "work", log=lambda _: None)
    assert result["escaped"] == ["harmless"] and result["caught"] == 1
    assert "golden:figures" in result["results"]["probe-scaled"]["regression"]
    assert _tree_digest(ROOT) == before


@pytest.mark.slow
def test_memory_mutants_grow_their_own_command(tmp_path, fixture_path):
    """What the memory check measures: each memory mutant raises the peak of the command it lives in
    beyond the gate's limit and leaves the other one within it (medians of 3 pairs of fresh processes)."""
    settings = mutation.Settings(project_settings("runtime_gate", pairs=3))
    limit = 1 + settings.gate.max_memory_growth
    control = mutation.scratch_tree(ROOT, tmp_path / "control")
    for name, grown, other in (("training-keeps-activations", "train", "infer"),
                               ("stitch-materialises-canvases", "infer", "train")):
        patch = next(m for m in CATALOGUE if m.name == name).patch
        tree = mutation.scratch_tree(ROOT, tmp_path / name, patch)
        verdicts = mutation.resource_verdicts(control, tree, settings)
        ratios = {command: verdicts[f"{command} memory"]["median_ratio"] for command in ("train", "infer")}
        assert ratios[grown] > limit > ratios[other], (name, ratios)


def test_the_tests_mirroring_the_edited_module_run_first():
    probe = next(m for m in CATALOGUE if m.name == "probe-scaled")  # edits src/ptychoreg/core/contract.py
    assert mutation.mirrored_tests(ROOT, probe.patch)[0] == "tests/test_contract.py"
    assert mutation.mirrored_tests(ROOT, None) == []
