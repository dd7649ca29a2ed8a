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


def test_an_edit_of_the_plotting_code_reruns_only_the_plots():
    loads = lambda name: sorted(s for s, spec in STAGES.items() if f"{PACKAGE_DIR}/{name}" in map(str, spec.get("deps", [])))
    assert loads("plots.py") == ["plots_fixture", "plots_quality"]
    assert {"train_fixture", "regress", "quality", "mutation"} <= set(loads("model/network.py"))
    assert not {"plots_fixture", "plots_quality", "reference", "profile"} & set(loads("model/network.py"))


# ---- params: each stage declares exactly the model/train/infer keys its runs read from params.yaml ------

def _params() -> dict:
    from ptychoreg.config import read_params

    return read_params(ROOT / "params.yaml")


def _interpolated(cmd: str, params: dict) -> list[str]:
    import re

    def value(match):
        node = params
        for part in match.group(1).split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\$\{([\w.]+)\}", value, cmd).split()


def _read_keys(train_argv: list[str] | None, infer_argv: list[str] | None) -> set[str]:
    """model/train keys a train run with `train_argv` takes from its params file (those no flag sets), and
    infer keys likewise."""
    from dataclasses import fields

    from ptychoreg.cli import infer, train
    from ptychoreg.config import SECTIONS

    keys = set()
    for argv, parser, sections in ((train_argv, train.parser(), ("model", "train")), (infer_argv, infer.parser(), ("infer",))):
        if argv is None:
            continue
        args = vars(parser.parse_args(["--data", "x", "--output-dir", "x", "--model", "x"][: 4 if parser.prog == "ptycho-train" else 6] + argv))
        keys |= {f"{s}.{f.name}" for s in sections for f in fields(SECTIONS[s]) if args.get(f.name) is None}
    return keys


def _harness_runs(stage: str, params: dict) -> tuple[list | None, list | None]:
    """The train and infer arguments each stage's runs use (built by the harness, as the stage runs them)."""
    from ptychoreg.config import QualitySettings, RegressSettings, SensitivitySettings
    from ptychoreg.harness import quality, sensitivity
    from ptychoreg.harness.regress import train_args
    from ptychoreg.harness.runner import params_args

    common = ["--accelerator", "cpu", "--threads", "1"]  # run_train_infer adds these to both
    if stage in ("regress", "golden_spread", "mutation"):
        regress = RegressSettings.from_params(params["regress"])
        return train_args(regress, "params.yaml") + common, params_args("params.yaml") + common
    if stage == "quality":
        q = QualitySettings.from_params(params["quality"])
        return quality.train_args(q, "params.yaml") + common, ["--params", "params.yaml"] + common
    if stage.startswith("sensitivity@"):
        s = SensitivitySettings.from_params(params["sensitivity"])
        train, infer = sensitivity.cell_args(s.max_epochs[0], s.n_images[0], s, "params.yaml")
        return train + common, infer + common
    if stage == "check_quality_model":
        from test_golden import QUALITY_MODEL_INFER_ARGS

        return None, list(QUALITY_MODEL_INFER_ARGS)
    cmd = _interpolated(STAGES[stage]["cmd"], params)
    if stage == "train_fixture":
        return cmd[cmd.index("--data") + 4:], None
    if stage == "infer_fixture":
        return None, cmd[cmd.index("--output-dir") + 2:]
    return None, None


def _stage_specs() -> dict:
    """Stage name -> spec, with the sensitivity matrix's first cell standing for all of them."""
    specs = {name: spec for name, spec in STAGES.items() if "matrix" not in spec}
    specs.update({f"{name}@cell": spec for name, spec in STAGES.items() if "matrix" in spec})
    return specs


@pytest.mark.parametrize("stage", sorted(_stage_specs()))
def test_stage_declares_exactly_the_workflow_params_it_reads(stage):
    params = _params()
    spec = _stage_specs()[stage]
    name = stage.replace("@cell", "@")
    needed = _read_keys(*_harness_runs(name, params))
    declared = {str(p) for p in spec.get("params", []) if str(p).split(".")[0] in ("model", "train", "infer")}
    assert declared == needed, (f"stage {stage}: declared but not read {sorted(declared - needed)}; "
                                f"read but not declared {sorted(needed - declared)}")
