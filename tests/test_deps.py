"""dvc.yaml declares the code each stage's command loads as a few directories (and CLI files), so a change
reruns what it affects: each stage's import closure must lie inside what it declares. And each stage
declares the recipes it runs, never single settings."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from stage_code import PACKAGE_DIR, import_closure, stage_code

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
CODE_STAGES = sorted(s for s, spec in STAGES.items() if stage_code(spec["cmd"], ROOT))


def _runs_nothing(path: Path) -> bool:
    """A file that executes nothing of its own: only a docstring (a package's __init__.py)."""
    body = ast.parse((ROOT / path).read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def _covered(path: Path, declared: list[Path]) -> bool:
    return _runs_nothing(path) or any(path == d or d in path.parents for d in declared)


def test_closure_follows_lazy_and_package_imports():
    files = {p.as_posix() for p in import_closure("ptychoreg.cli.fixture", ROOT / "src")}
    # cli/fixture.py imports ptychoreg.harness.fixture only inside _main; the package __init__ runs first.
    assert {"src/ptychoreg/__init__.py", "src/ptychoreg/cli/__init__.py", "src/ptychoreg/cli/fixture.py",
            "src/ptychoreg/harness/fixture.py", "src/ptychoreg/core/contract.py"} <= files
    assert "src/ptychoreg/core/training.py" not in files


def test_subprocess_modules_named_in_full_count():
    """The harness runs the CLIs as `python -m ptychoreg.cli.train`: the training code is the stage's too."""
    files = {p.as_posix() for p in import_closure("ptychoreg.cli.regress", ROOT / "src")}
    assert {"src/ptychoreg/cli/train.py", "src/ptychoreg/core/training.py", "src/ptychoreg/core/model/network.py"} <= files


@pytest.mark.parametrize("stage", CODE_STAGES)
def test_stage_declares_the_code_it_loads(stage):
    declared = [Path(str(d)) for d in STAGES[stage].get("deps", []) if str(d).startswith(PACKAGE_DIR)]
    missing = sorted(p.as_posix() for p in stage_code(STAGES[stage]["cmd"], ROOT) if not _covered(p, declared))
    assert not missing, f"stage {stage} loads but does not declare: {', '.join(missing)}"
    assert all((ROOT / d).exists() for d in declared), f"stage {stage} declares code that does not exist"


def test_an_edit_reruns_only_what_it_affects():
    """Training never loads the scoring, the harness or the plots; the plots load no training."""
    loads = lambda stage: {p.as_posix() for p in stage_code(STAGES[stage]["cmd"], ROOT)}
    deps = lambda stage: {str(d) for d in STAGES[stage].get("deps", [])}
    for stage in ("train_fixture", "quality_pretrain", "quality_refine"):
        assert not {d for d in deps(stage) if d.startswith(PACKAGE_DIR)} - {
            f"{PACKAGE_DIR}/core", f"{PACKAGE_DIR}/cli/train.py"}, stage
        assert not any("/evaluation/" in p or "/harness/" in p for p in loads(stage)), stage
    assert f"{PACKAGE_DIR}/evaluation" not in deps("quality_refine")  # a scoring edit keeps both trainings
    assert f"{PACKAGE_DIR}/evaluation" in deps("quality")
    assert not any("training.py" in p for p in loads("plots_fixture"))


# ---- params: a stage declares the recipes it runs (and the sections it reads), never single settings ----

def _recipes_named(cmd: str) -> set[str]:
    return set(re.findall(r"--recipe (\w+)", cmd))


def _with_parents(names: set[str], recipes: dict) -> set[str]:
    out = set()
    for name in names:
        while name:
            out.add(name)
            name = (recipes[name] or {}).get("extends")
    return out


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_declares_the_recipes_it_runs(stage):
    from ptychoreg.core.config import read_params

    recipes = read_params(ROOT / "params.yaml")["recipes"]
    spec = STAGES[stage]
    declared = {str(p) for p in spec.get("params", [])}
    run = _with_parents(_recipes_named(spec["cmd"]), recipes)
    assert {f"recipes.{name}" for name in run} <= declared, f"stage {stage} runs recipes {sorted(run)}"
    assert not {p for p in declared if p.split(".")[0] in ("model", "train", "infer")}, f"stage {stage} lists single keys"
    assert all(p.split(".")[1] in recipes for p in declared if p.startswith("recipes.")), f"stage {stage}: unknown recipe"


def test_dvc_yaml_stays_readable():
    assert len((ROOT / "dvc.yaml").read_text().splitlines()) <= 250
