"""The pipeline's wiring, read from dvc.yaml itself (issue #33): what each stage's command reads is among its
deps, what it writes is among its outs / metrics / plots, and the stages chain the way the docs say.

A stage's command is parsed with the real argument parser of the CLI it runs (`python -m ptychoreg.cli.X`),
so paths the CLI takes by default count too; `${key}` is interpolated from params.yaml and matrix stages are
expanded, as DVC does. A path a stage reads is declared when a dep is that path, a folder holding it, or a
file inside it (a run folder of which the stage declares the files it reads).
"""

from __future__ import annotations

import importlib
import itertools
import re
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

from conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())

# argparse destinations that name files a command writes; every other path-like value is one it reads.
OUTPUT_DESTS = {"output_dir", "out_dir", "metrics_out", "timings_out", "timing_out", "report", "runtime_plot",
                "fixture_notes", "regression_report", "metadata_out", "output"}
FOLDER_DESTS = {"output_dir", "out_dir"}
NOT_PATHS = {"params", "recipe", "label", "layout", "command", "only", "strategy"}
# Path-valued flags a stage passes that name a file without reading it: report's --fixture is only printed in
# the fixture notes (harness/reports.fixture_notes), never opened.
LABEL_ONLY = {("report", "fixture")}
# Read but undeclared in dvc.yaml today (see test_regress_declares_what_it_reads, strict xfail).
KNOWN_UNDECLARED: set[tuple[str, str, str]] = set()  # (stage, flag, path) a stage may read undeclared: none
PATH_SUFFIXES = {".npz", ".pt", ".json", ".yaml", ".lock", ".md", ".py", ".csv", ".png", ".txt"}


def _lookup(context: dict, dotted: str):
    value = context
    for part in dotted.split("."):
        value = value[part]
    return value


def _interpolate(value, context: dict):
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{([\w.]+)\}", value)
        if whole:
            return _lookup(context, whole.group(1))
        return re.sub(r"\$\{([\w.]+)\}", lambda m: str(_lookup(context, m.group(1))), value)
    if isinstance(value, list):
        return [_interpolate(v, context) for v in value]
    if isinstance(value, dict):
        return {_interpolate(k, context): _interpolate(v, context) for k, v in value.items()}
    return value


def _expanded_stages() -> dict[str, dict]:
    out = {}
    for name, spec in DVC["stages"].items():
        if "matrix" in spec:
            matrix = _interpolate(spec["matrix"], PARAMS)
            body = {k: v for k, v in spec.items() if k != "matrix"}
            for combo in itertools.product(*matrix.values()):
                item = dict(zip(matrix, combo))
                stage = _interpolate(body, {**PARAMS, "item": item})
                out[f"{name}@{'-'.join(map(str, combo))}"] = {"base": name, **stage}
        else:
            out[name] = {"base": name, **_interpolate(spec, PARAMS)}
    return out


STAGES = _expanded_stages()


def _entries(spec: dict, *keys: str) -> list[str]:
    found = []
    for key in keys:
        for entry in spec.get(key) or []:
            found += list(entry) if isinstance(entry, dict) else [entry]
    return [str(PurePosixPath(p)) for p in found]


def _commands(spec: dict) -> list[list[str]]:
    cmd = spec["cmd"]
    return [shlex.split(c) for c in ([cmd] if isinstance(cmd, str) else cmd)]


def _looks_like_path(value) -> bool:
    return isinstance(value, str) and ("/" in value or PurePosixPath(value).suffix in PATH_SUFFIXES)


def _cli_paths(words: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """(module, [(dest, path)]) of a `python -m ptychoreg.cli.X ...` command, parsed by X's own parser."""
    module = words[words.index("-m") + 1]
    args = vars(importlib.import_module(module).parser().parse_args(words[words.index("-m") + 2 :]))
    found = []
    for dest, value in args.items():
        for v in value if isinstance(value, list) else [value]:
            if dest not in NOT_PATHS and _looks_like_path(v):
                found.append((dest, str(PurePosixPath(v))))
    return module, found


def _pytest_paths(words: list[str]) -> list[tuple[str, str]]:
    """(flag or "test", path) of a `python -m pytest ...` command: test files and --option values."""
    found, i = [], words.index("-m") + 2
    while i < len(words):
        word = words[i]
        if word.startswith("--") and "=" not in word and i + 1 < len(words) and not words[i + 1].startswith("-"):
            if _looks_like_path(words[i + 1]):
                found.append((word[2:].replace("-", "_"), words[i + 1]))
            i += 2
            continue
        if not word.startswith("-") and _looks_like_path(word.split("::")[0]):
            found.append(("test", word.split("::")[0]))
        i += 1
    return found


def _reads_and_writes(stage: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    reads, writes = [], []
    for words in _commands(STAGES[stage]):
        module = words[words.index("-m") + 1]
        pairs = _cli_paths(words)[1] if module.startswith("ptychoreg.") else _pytest_paths(words)
        for dest, path in pairs:
            (writes if dest in OUTPUT_DESTS else reads).append((dest, path))
    return reads, writes


def _declared_read(path: str, deps: list[str]) -> bool:
    p = PurePosixPath(path)
    return any(p == PurePosixPath(d) or PurePosixPath(d) in p.parents or p in PurePosixPath(d).parents for d in deps)


def _at_or_under(path: str, outs: list[str]) -> bool:
    p = PurePosixPath(path)
    return any(p == PurePosixPath(o) or PurePosixPath(o) in p.parents for o in outs)


def _flag(stage: str, flag: str) -> list[str]:
    words = _commands(STAGES[stage])[0]
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == flag]


def test_the_parsing_sees_the_pipeline():
    """Catches this file's parser going blind (matrix not expanded, ${...} left in, no CLI parsed)."""
    assert {"train_fixture", "quality_refine", "report"} <= set(STAGES)
    assert sum(s["base"] == "sensitivity" for s in STAGES.values()) == len(PARAMS["sensitivity"]["max_epochs"]) * len(
        PARAMS["sensitivity"]["n_images"])
    assert not any("${" in yaml.safe_dump(spec) for spec in STAGES.values())
    reads, writes = _reads_and_writes("infer_fixture")
    assert ("model", "outputs/fixture/train/model.pt") in reads and ("output_dir", "outputs/fixture/infer") in writes
    assert ("fixture_metrics", "metrics/fixture.json") in _reads_and_writes("report")[0]  # a CLI default counts


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_path_a_stage_reads_is_a_dep(stage):
    """Catches a stage reading a path (flag or CLI default) its deps do not name: DVC neither orders nor reruns it."""
    deps = _entries(STAGES[stage], "deps")
    base = STAGES[stage]["base"]
    reads, _ = _reads_and_writes(stage)
    missing = [f"{dest}={path}" for dest, path in reads
               if (base, dest) not in LABEL_ONLY and (base, dest, path) not in KNOWN_UNDECLARED
               and not _declared_read(path, deps)]
    assert not missing, f"stage {stage} reads undeclared {missing}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_path_a_stage_writes_is_an_output(stage):
    """Catches a written --output-dir/--out-dir/--metrics-out/--report/... missing from outs, metrics, plots."""
    outs = _entries(STAGES[stage], "outs", "metrics", "plots")
    _, writes = _reads_and_writes(stage)
    # A folder the command writes into (--out-dir of the plots) may be declared by the files it holds.
    holds = lambda dest, path: dest in FOLDER_DESTS and any(
        PurePosixPath(path) in PurePosixPath(o).parents for o in outs)
    missing = [f"{dest}={path}" for dest, path in writes if not (_at_or_under(path, outs) or holds(dest, path))]
    assert not missing, f"stage {stage} writes undeclared {missing}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_path_a_stage_reads_exists_or_is_made_by_a_stage(stage):
    """Catches an input path that names nothing (a typo made in cmd and deps alike)."""
    reads, _ = _reads_and_writes(stage)
    base = STAGES[stage]["base"]
    made = [o for spec in STAGES.values() if spec["base"] != base for o in _entries(spec, "outs", "metrics", "plots")]
    for dest, path in reads:
        produced = _declared_read(path, made)
        tracked = (ROOT / path).exists() or (ROOT / f"{path}.dvc").is_file()
        assert produced or tracked, f"stage {stage}: {dest}={path} is neither a stage's output nor in the repository"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_cli_a_stage_runs_is_a_dep(stage):
    """Catches a stage whose `python -m ptychoreg.cli.X` file (or pytest file) is not in its deps."""
    deps = _entries(STAGES[stage], "deps")
    for words in _commands(STAGES[stage]):
        module = words[words.index("-m") + 1]
        if module.startswith("ptychoreg."):
            source = f"src/{module.replace('.', '/')}.py"
            assert (ROOT / source).is_file(), source
            assert _at_or_under(source, deps), f"stage {stage} runs {source} undeclared"  # it, or a folder above
        else:
            for dest, path in _pytest_paths(words):
                if dest == "test":
                    assert _at_or_under(path, deps), f"stage {stage} runs {path} undeclared"


def test_quality_refine_warm_starts_from_quality_pretrains_model():
    """Catches quality_refine starting from another model, other data, or an architecture it cannot load."""
    from ptychoreg.core.config import read_params, resolve_recipe

    pretrain_out = _flag("quality_pretrain", "--output-dir")
    init = _flag("quality_refine", "--init-model")
    assert len(pretrain_out) == 1 and init == [f"{pretrain_out[0]}/model.pt"]
    assert init[0] in _entries(STAGES["quality_refine"], "deps")
    assert _flag("quality_refine", "--data") == _flag("quality_pretrain", "--data")
    params = read_params(ROOT / "params.yaml")
    (pre_name,), (ref_name,) = _flag("quality_pretrain", "--recipe"), _flag("quality_refine", "--recipe")
    assert params["recipes"][ref_name].get("extends") == pre_name
    pre, ref = resolve_recipe(params, pre_name), resolve_recipe(params, ref_name)
    without_gridsize = lambda c: {k: v for k, v in c.model.model_dump().items() if k != "gridsize"}
    assert without_gridsize(pre) == without_gridsize(ref)
    assert (pre.model.gridsize, ref.model.gridsize) == (1, 2)  # phase 1 single patterns, phase 2 groups
    # The quality stage scores the two phases in order; its reference model is refine's.
    assert _flag("quality", "--phase") == [pretrain_out[0], _flag("quality_refine", "--output-dir")[0]]
    assert _flag("check_quality_model", "--quality-model") == [f"{_flag('quality_refine', '--output-dir')[0]}/model.pt"]


def test_the_fixture_chain():
    """Catches infer_fixture using another model or data than train_fixture, or an undeclared fixture file."""
    assert _flag("infer_fixture", "--model") == [f"{_flag('train_fixture', '--output-dir')[0]}/model.pt"]
    assert _flag("infer_fixture", "--data") == _flag("train_fixture", "--data") == [PARAMS["fixture"]["output"]]
    assert _flag("infer_fixture", "--recipe") == _flag("train_fixture", "--recipe")
    outs = _entries(STAGES["make_fixture"], "outs")
    fixture = PARAMS["fixture"]["output"]
    assert fixture in outs and str(PurePosixPath(fixture).with_suffix(".json")) in outs
    assert _flag("plots_fixture", "--run-dir") == [_flag("train_fixture", "--output-dir")[0],
                                                   _flag("infer_fixture", "--output-dir")[0]]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_declares_the_recipe_its_cli_runs_by_default(stage):
    """Catches a stage whose CLI runs a default recipe that the stage's params do not name."""
    declared = {str(p) for p in STAGES[stage].get("params") or []}
    for words in _commands(STAGES[stage]):
        module = words[words.index("-m") + 1]
        if not module.startswith("ptychoreg."):
            continue
        args = vars(importlib.import_module(module).parser().parse_args(words[words.index("-m") + 2 :]))
        if args.get("recipe") and args.get("params"):
            assert args["params"] == "params.yaml" and Path(ROOT / args["params"]).is_file()
            assert f"recipes.{args['recipe']}" in declared, f"stage {stage} runs recipe {args['recipe']}"


# Deps that are code or environment, not inputs a command is given: the stage's code, its tests, the lock.
def _is_code(dep: str) -> bool:
    p = PurePosixPath(dep)
    return (p.parts[0] in ("src", "mutants") or dep == "requirements.lock"
            or (p.parts[0] == "tests" and "fixtures" not in p.parts))


# Stages whose inputs reach them without a flag: the pytest checks read the fixture as the test suite's own
# (tests/conftest.py FIXTURE); the mutation stage runs the whole suite and the regression in a copy of the tree.
READ_WITHOUT_A_FLAG = {"check_fixture": {PARAMS["fixture"]["output"]},
                       "check_quality_model": {PARAMS["fixture"]["output"]},
                       "mutation": "all"}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_input_a_stage_declares_reaches_its_command(stage):
    """Catches a stage that declares an input (another stage's output, a dataset) but whose command never gets
    it: a dropped --staged-run, --init-model, --model, so the check or warm start silently does not happen."""
    base = STAGES[stage]["base"]
    implicit = READ_WITHOUT_A_FLAG.get(base, set())
    if implicit == "all":
        return
    reads = [path for _, path in _reads_and_writes(stage)[0]]
    unused = [dep for dep in _entries(STAGES[stage], "deps")
              if not _is_code(dep) and dep not in implicit and not _declared_read(dep, reads)]
    assert not unused, f"stage {stage} declares {unused} but its command reads none of them"


def test_the_quality_stage_reads_each_phase_s_own_timings():
    """Catches the quality stage given the phases' timings in another order than the phases themselves: each
    phase's seconds and peak memory reported under the other."""
    phases = _flag("quality", "--phase")
    timings = _flag("quality", "--phase-timings")
    by_output = {_flag(name, "--output-dir")[0]: name for name in ("quality_pretrain", "quality_refine")}
    assert len(phases) == len(timings) == 2
    assert timings == [_flag(by_output[phase], "--timings-out")[0] for phase in phases]


def test_each_sensitivity_cell_runs_the_cell_it_is_named_after():
    """Catches a matrix cell run with another item's value (--n-images ${item.epochs}): every epochs x images
    cell of params.yaml runs once, with the settings its metrics file is named after."""
    from ptychoreg.cli import sensitivity

    ran = set()
    for stage, spec in STAGES.items():
        if spec["base"] != "sensitivity":
            continue
        words = _commands(spec)[0]
        args = sensitivity.parser().parse_args(words[words.index("-m") + 2 :])
        assert args.metrics_out == f"metrics/sensitivity/e{args.max_epochs}_n{args.n_images}.json", stage
        ran.add((args.max_epochs, args.n_images))
    grid = PARAMS["sensitivity"]
    assert ran == set(itertools.product(grid["max_epochs"], grid["n_images"]))
