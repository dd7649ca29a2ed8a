"""The regression measures its own power: known bug classes, each a small realistic mistake written as a
patch (`mutants/*.patch` at the top of the repository), applied one at a time, must each be caught.

A mutant is applied the way a colleague's edit would be: `git apply` on a scratch copy of the working tree
(the DVC-tracked data linked into it, read-only), and the project's own checks then run on that copy as
fresh processes, so nothing in this interpreter or in the working tree is ever changed. For each mutant:

1. the regression (`python -m ptychoreg.harness.mutation regression`, run inside the copy): rebuild the
   fixture from the canonical dataset, whose sha256 must equal `metrics/fixture.json` (`fixture bytes`);
   stitch the committed fixture's true patches back into its object (`orientation`); train and infer the
   regression recipe as the CLIs do (`run` when either fails) with the regression's own checks
   (`loss falls`, `finite`, `object frame`); the run's golden record against the golden values, through
   the same pytest module the `check_fixture` stage runs (`golden:<table>`);
2. the fast suite (`pytest -m "not slow" -x`, inside the copy): the first test that fails (`test:<id>`);
3. only for a mutant that passed all of those: the runtime gate's comparison, the unmutated copy as its
   base: the real train and infer commands of each, fresh processes in interleaved pairs, their wall time
   (`runtime`) and peak memory (`memory`) under the gate's limits.

The unmutated copy (the control) must pass every check, or the score means nothing and the stage fails.
A patch that no longer applies fails the stage too: the catalogue follows the code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ptychoreg.core.cli import entry_points, load_params
from ptychoreg.core.config import GateSettings, load_section
from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.dvc import run_tool
from ptychoreg.harness.runner import RecipeRun, project_data
from ptychoreg.harness.runtime_gate import compare
from ptychoreg.harness.timing import Side

CATALOGUE = "mutants"  # the patches, relative to the repository's top
HARNESS_TESTS = "tests/test_mutation.py"
GOLDEN_TEST = "tests/test_golden.py"  # the check_fixture stage's golden check
# Ignored paths a copy does not need (DVC-tracked data is linked; these are caches and environments).
_NOT_LINKED = (".venv", ".pytest_cache", ".hypothesis", ".dvc/tmp", "dvc_plots")


@dataclass(frozen=True)
class Mutant:
    name: str
    bug_class: str
    what: str  # the mistake, in words
    patch: Path


def read_catalogue(root: str | Path) -> tuple[Mutant, ...]:
    """Every `mutants/NAME.patch`: a unified diff after `# class:` and `# what:` header lines."""
    mutants = []
    for patch in sorted((Path(root) / CATALOGUE).glob("*.patch")):
        header = {}
        for line in patch.read_text().splitlines():
            if not line.startswith("#"):
                break
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
        if not header.get("class") or not header.get("what"):
            raise PtychoError(patch, "a mutant needs `# class: ...` and `# what: ...` lines before its diff")
        mutants.append(Mutant(patch.stem, header["class"], header["what"], patch))
    return tuple(mutants)


def _git_paths(root: Path, *options: str) -> list[str]:
    return [p for p in run_tool(["git"], "ls-files", "-z", *options, cwd=root).stdout.split("\0") if p]


def scratch_tree(root: str | Path, dest: str | Path, patch: Path | None = None) -> Path:
    """A copy of the working tree at `root` in `dest` (what git tracks or would track, as it is now), with
    the data git ignores (DVC's outputs and cache) linked, committed in a repository of its own, and
    `patch` applied on top (uncommitted, as a colleague's edit)."""
    root, dest = Path(root).resolve(), Path(dest)
    for rel in _git_paths(root, "--cached", "--others", "--exclude-standard"):
        source = root / rel
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    for rel in _git_paths(root, "--others", "--ignored", "--exclude-standard", "--directory"):
        rel = rel.rstrip("/")
        if rel.startswith(_NOT_LINKED) or "__pycache__" in rel or rel.endswith(".egg-info") or (dest / rel).exists():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).symlink_to(root / rel)
    # A repository of its own (one commit of the copy), so what runs there sees git as in a checkout.
    identity = ["-c", "user.name=ptychoreg mutation", "-c", "user.email=mutation@ptychoreg", "-c", "commit.gpgsign=false"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "--no-verify", "-m", "scratch copy"]):
        run_tool(["git", *identity], *argv, cwd=dest)
    if patch is not None:
        applied = subprocess.run(["git", "apply", "--whitespace=nowarn", str(Path(patch).resolve())], cwd=dest,
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if applied.returncode != 0:
            raise PtychoError(patch, f"does not apply to the working tree: {applied.stderr.strip().splitlines()[0]} "
                                     "(the code moved: rewrite the mutant against it)")
    return dest


def tree_env(tree: Path) -> dict:
    """The environment a command in `tree` runs in: its own `src` before the installed package."""
    return dict(os.environ, PYTHONPATH=str(tree / "src"), CUDA_VISIBLE_DEVICES="", DVC_NO_ANALYTICS="1",
                PYTHONDONTWRITEBYTECODE="1")


def _in_tree(tree: Path, argv: list[str], log: Path) -> subprocess.CompletedProcess:
    with open(log, "w") as sink:
        return subprocess.run([sys.executable, *argv], cwd=tree, env=tree_env(tree), stdout=sink,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)


def failed_cases(junit: Path) -> list[tuple[str, str]]:
    """(class name, test name) of each test case a pytest JUnit XML report records as failed or in error."""
    return [(case.get("classname", ""), case.get("name", "")) for case in ElementTree.parse(junit).getroot().iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None]


# ---- the checks, each run inside a copy --------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    gate: GateSettings  # the runtime gate's limits (params.yaml runtime_gate:), applied to the resources
    recipe: str = "regression"
    fast_suite: bool = True


def regression_failures(tree: Path, recipe: str, work: Path) -> list[str]:
    """The regression's checks in `tree` (a fresh process running the tree's own code)."""
    out = work / "regression.json"
    proc = _in_tree(tree, ["-m", "ptychoreg.harness.mutation", "regression", str(out), recipe], work / "regression.log")
    if not out.is_file():
        lines = (work / "regression.log").read_text(errors="replace").strip().splitlines()
        return [f"run ({lines[-1][:100] if lines else f'exit {proc.returncode}'})"]
    return json.loads(out.read_text())


def mirrored_tests(tree: Path, patch: Path | None) -> list[str]:
    """The test files that mirror the files a patch edits (tests/test_<module>.py, tests/test_prop_<module>.py):
    run first, where a bug in that module is most likely caught, so a caught mutant stops the suite early."""
    if patch is None:
        return []
    edited = [line[6:].strip() for line in Path(patch).read_text().splitlines() if line.startswith("+++ b/")]
    stems = [Path(path).stem for path in edited]
    return [f"tests/{prefix}{stem}.py" for stem in stems for prefix in ("test_", "test_prop_")
            if (tree / "tests" / f"{prefix}{stem}.py").is_file()]


def fast_suite_failures(tree: Path, work: Path, patch: Path | None = None) -> list[str]:
    """The first fast test that fails in `tree` (`-x`: a caught mutant stops the suite early); the tests
    mirroring the edited modules run first, then the rest of the suite."""
    junit = work / "junit.xml"
    # This harness's own tests are left out: in a mutated copy its catalogue check fails for every mutant (the
    # patch is already applied there), which says nothing about the mutant.
    proc = _in_tree(tree, ["-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", f"--junitxml={junit}",
                           f"--ignore={HARNESS_TESTS}", *mirrored_tests(tree, patch), "tests"], work / "fast_suite.log")
    if not junit.is_file():
        return [f"test: the suite did not run (exit {proc.returncode})"]
    failed = [f"test:{module.replace('.', '/')}.py::{name}" if module else f"test:{name} (collection)"
              for module, name in failed_cases(junit)]
    if not failed and proc.returncode != 0:
        failed.append(f"test: pytest exit {proc.returncode} (collection)")
    return failed


def resource_verdicts(control: Path, mutated: Path, settings: Settings) -> dict[str, dict]:
    """The runtime gate's comparison with the control as its base and the mutant as its head: the real train
    and infer commands of each tree, fresh processes, `gate.pairs` interleaved pairs (harness.timing)."""
    params = control / "params.yaml"
    return compare(Side("control", control), Side("mutant", mutated), str(control / project_data(params)[0]),
                   RecipeRun.of(str(params), settings.recipe), settings.gate, log=lambda _: None)


def run_mutants(root: Path, mutants: tuple[Mutant, ...], settings: Settings, work: Path,
                log: Callable[[str], None] = print) -> dict:
    """The control, then every mutant, each on its own copy of `root`."""
    started = time.perf_counter()
    control = scratch_tree(root, work / "control" / "tree")
    failed = regression_failures(control, settings.recipe, work / "control")
    if settings.fast_suite:
        failed += fast_suite_failures(control, work / "control")
    if failed:
        raise PtychoError(None, f"the unmutated control fails {', '.join(failed)}: fix the tree first (a stale fixture "
                                "or golden values: `dvc repro`, then `./tasks golden` if intended)")
    log(f"control: every check passes ({time.perf_counter() - started:.0f} s)")
    results = {}
    for mutant in mutants:
        mutant_started = time.perf_counter()
        mutant_work = work / mutant.name
        tree = scratch_tree(root, mutant_work / "tree", mutant.patch)
        regression = regression_failures(tree, settings.recipe, mutant_work)
        fast = fast_suite_failures(tree, mutant_work, mutant.patch) if settings.fast_suite else []
        resources = []
        if not regression and not fast:
            resources = [f"{'memory' if 'memory' in part else 'runtime'} ({part} x{r['median_ratio']:.2f} against the "
                         f"control, limit x{r['limit']:.2f})"
                         for part, r in resource_verdicts(control, tree, settings).items() if not r["ok"]]
        caught_by = regression + fast + resources
        results[mutant.name] = {"class": mutant.bug_class, "what": mutant.what, "caught": bool(caught_by),
                                "regression": regression, "fast_suite": fast, "resources": resources,
                                "seconds": round(time.perf_counter() - mutant_started, 1)}
        log(f"{'caught ' if caught_by else 'ESCAPED'} {mutant.name}: {', '.join(caught_by) or 'no check failed'} "
            f"({results[mutant.name]['seconds']:.0f} s)")
        shutil.rmtree(tree)
    caught = sum(r["caught"] for r in results.values())
    return {"score": caught / len(results), "caught": caught, "mutants": len(results),
            "caught_by_fast_suite": sum(bool(r["fast_suite"]) for r in results.values()),
            "caught_by_regression": sum(bool(r["regression"]) for r in results.values()),
            "escaped": sorted(n for n, r in results.items() if not r["caught"]),
            "seconds": time.perf_counter() - started, "results": results}


def report_markdown(result: dict) -> str:
    lines = [
        "# Mutation score: what the fast checks catch",
        "",
        "Generated by the `mutation` stage (`python -m ptychoreg.cli.mutation`). Each mutant is one known bug",
        "class of this field, a patch in `mutants/`, applied to a scratch copy of the tree; the regression",
        "(fixture rebuild, orientation, train and infer, golden values) and the fast test suite then run on",
        "that copy (see `ptychoreg/harness/mutation.py`).",
        "",
        f"**{result['caught']} of {result['mutants']} mutants caught** (score {result['score']:.2f}): "
        f"{result['caught_by_regression']} by the regression, {result['caught_by_fast_suite']} by the fast suite, "
        f"in {result['seconds']:.0f} s.",
        "",
        "| mutant | bug class | the mistake | regression | fast suite (first failing test) | resources |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in result["results"].items():
        cells = [", ".join(r[k]) or "-" for k in ("regression", "fast_suite", "resources")]
        escaped = "" if r["caught"] else " **ESCAPED**"
        lines.append(f"| `{name}`{escaped} | {r['class']} | {r['what']} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def metrics(result: dict) -> dict:
    keys = ("score", "caught", "mutants", "caught_by_regression", "caught_by_fast_suite", "escaped", "seconds")
    return {k: result[k] for k in keys} | {
        "caught_by": {name: r["regression"] + r["fast_suite"] + r["resources"] for name, r in result["results"].items()}}


# ---- what runs inside a copy ---------------------------------------------------------------------------------

def golden_failures(record_path: Path) -> list[str]:
    """The golden tables that differ, as the `check_fixture` stage's pytest check reports them."""
    with tempfile.TemporaryDirectory(prefix="ptychoreg-junit-") as scratch:
        junit = Path(scratch) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{GOLDEN_TEST}::test_golden_numbers",
                        "--golden-record", str(record_path), f"--junitxml={junit}"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if not junit.is_file():
            raise PtychoError(GOLDEN_TEST, "the golden check did not run")
        return [f"golden:{name.partition('[')[2].rstrip(']')}" for _, name in failed_cases(junit)]


def _regression_in_tree(out: Path, recipe: str) -> list[str]:
    """The regression's checks, in the current directory's tree; the names of those that failed."""
    # Imported here, not at the top: this module is also the entry the copy runs (`python -m`), and numpy
    # and torch must load after `entry_points` has set the process up.
    from ptychoreg.core.contract import load_npz
    from ptychoreg.core.fileio import file_digest
    from ptychoreg.core.inference import infer_to
    from ptychoreg.core.training import train_to
    from ptychoreg.evaluation.quality import quality_report
    from ptychoreg.harness.fixture import generate, recorded_sha256
    from ptychoreg.harness.golden import golden_record, write_record
    from ptychoreg.harness.regress import ORIENTATION_TOLERANCE, orientation_error, read_run

    failed = []
    params, source = load_params("params.yaml")
    work = out.parent
    fixture = load_section("fixture", params, source).output  # the committed one, linked into the copy
    try:
        rebuilt = work / "fixture.npz"
        generate(params["data"]["canonical"], load_section("fixture", params, source), output=rebuilt,
                 metadata_out=work / "fixture.json")
        if file_digest(rebuilt) != recorded_sha256("metrics/fixture.json"):
            failed.append("fixture bytes")
    except Exception as exc:  # noqa: BLE001 - any failure of the generator is a catch
        failed.append(f"fixture build ({type(exc).__name__})")
    try:
        if not orientation_error(fixture) < ORIENTATION_TOLERANCE:
            failed.append("orientation")
    except Exception as exc:  # noqa: BLE001
        failed.append(f"orientation ({type(exc).__name__})")
    run_dir = work / "run"
    try:  # what ptycho-train and ptycho-infer do for the recipe on the committed fixture, through the library
        config, data = RecipeRun.of("params.yaml", recipe).config, load_npz(fixture)
        train_to(run_dir, config, data, log=lambda _: None)
        infer_to(run_dir, run_dir / "model.pt", data, config.infer, score=quality_report)
        run = read_run(run_dir, data.object.shape)
    except Exception as exc:  # noqa: BLE001 - a crash of train or infer is the regression failing
        return failed + [f"run ({type(exc).__name__}: {str(exc)[:80]})"]
    failed += [name for name, ok in (("loss falls", run["last_loss"] < run["first_loss"]),
                                     ("object frame", run["frame_ok"]), ("finite", run["finite_ok"])) if not ok]
    record = work / "golden_record.json"
    write_record(record, golden_record(run_dir, data))
    return failed + golden_failures(record)


def _main(argv: list[str]) -> int:
    """`regression OUT RECIPE`: the checks' failures, as JSON in OUT, in the current directory's tree."""
    what, out, recipe = sys.argv[1:] if argv is None else argv
    if what != "regression":
        raise PtychoError(None, f"unknown check {what!r}: `regression OUT RECIPE`")
    out = Path(out).resolve()
    out.write_text(json.dumps(_regression_in_tree(out, recipe)))
    return 0


if __name__ == "__main__":
    entry_points("python -m ptychoreg.harness.mutation", _main)[1]()
