"""dvc.yaml declares exactly the code each stage's command loads (the import graph decides), so a change
reruns what it affects and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from ptychoreg.harness.deps import PACKAGE_DIR, import_closure, stage_code

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
REGENERATE = "`python -m ptychoreg.harness.deps` rewrites dvc.yaml from the import graph"


def test_closure_follows_lazy_and_package_imports():
    files = {p.as_posix() for p in import_closure("ptychoreg.cli.fixture", ROOT / "src")}
    # cli/fixture.py imports ptychoreg.fixture only inside _main; the package __init__ runs first.
    assert {"src/ptychoreg/__init__.py", "src/ptychoreg/cli/__init__.py", "src/ptychoreg/cli/fixture.py",
            "src/ptychoreg/fixture.py", "src/ptychoreg/contract.py", "src/ptychoreg/steps.py"} <= files
    assert "src/ptychoreg/training.py" not in files


def test_subprocess_modules_named_in_full_count():
    """The harness runs the CLIs as `python -m ptychoreg.cli.train`: the training code is the stage's too."""
    files = {p.as_posix() for p in import_closure("ptychoreg.cli.quality", ROOT / "src")}
    assert {"src/ptychoreg/training.py", "src/ptychoreg/model/network.py", "src/ptychoreg/inference.py"} <= files


@pytest.mark.parametrize("stage", sorted(s for s, spec in STAGES.items() if stage_code(spec["cmd"], ROOT)))
def test_stage_declares_exactly_the_code_it_loads(stage):
    declared = [Path(str(d)) for d in STAGES[stage].get("deps", [])]
    needed = stage_code(STAGES[stage]["cmd"], ROOT)
    code = {d for d in declared if Path(PACKAGE_DIR) in d.parents}
    missing = sorted(p.as_posix() for p in needed - code)
    stale = sorted(p.as_posix() for p in code - needed)
    assert not missing, f"stage {stage} loads but does not declare: {', '.join(missing)} ({REGENERATE})"
    assert not stale, f"stage {stage} declares but never loads: {', '.join(stale)} ({REGENERATE})"
