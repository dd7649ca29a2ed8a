"""The regression measures its own power: known bug classes (the catalogue, `ptychoreg.harness.mutants`),
applied one at a time, must each be caught.

Each mutant is a small realistic mistake, applied in-process by replacing one function (every reference to
it in our loaded modules) for the duration of one run, so an interrupted run leaves the source untouched.
A run does what `dvc repro` does with the code under test, in-process, on the regression's settings:

1. rebuild the fixture from the canonical dataset; its sha256 must equal `metrics/fixture.json`
   (`fixture bytes`); stitching the committed fixture's true patches must give back its object
   (`orientation`);
2. train and infer the regression recipe through the library (`train_to`, `infer_to`: what the CLIs
   run) on the committed fixture, as `regress` does when the fixture was pulled (`run` when either
   fails), with the regression's own checks (`loss falls`, `finite`, `object frame`);
3. compare the run's golden record with the committed golden values through the same pytest module the
   `regress` stage runs (`golden:<table>`);
4. only for a mutant that passed all of those: its resources against the unmutated code's, with the
   runtime gate's limits: time, interleaved in this process (`runtime`), and peak memory of train and
   infer, each in a fresh process with the mutant applied there (`memory`: a process's own peak, as the
   gate measures it; in this process freed memory would hide growth). Both are reported when both catch.

The unmutated control must pass every check, or the score means nothing and the stage fails.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ptychoreg.core.errors import PtychoError

from ptychoreg.harness.mutants import MUTANTS, NO_MUTANT, Mutant

# Modules a run loads; imported before patching, so every binding of a replaced function is found.
RUN_MODULES = ("ptychoreg.core.config", "ptychoreg.core.training", "ptychoreg.core.inference", "ptychoreg.harness.fixture",
               "ptychoreg.harness.regress", "ptychoreg.harness.golden", "ptychoreg.core.model.bundle")


@contextlib.contextmanager
def applied(mutant: Mutant) -> Iterator[None]:
    """Replace `module.function` in every loaded ptychoreg module that holds it; restore afterwards."""
    import importlib

    for name in RUN_MODULES + (mutant.module,):
        importlib.import_module(name)
    original = getattr(sys.modules[mutant.module], mutant.function)
    replacement = mutant.make(original)
    holders = [m for name, m in list(sys.modules.items())
               if name.split(".")[0] == "ptychoreg" and getattr(m, mutant.function, None) is original]
    for module in holders:
        setattr(module, mutant.function, replacement)
    try:
        yield
    finally:
        for module in holders:
            setattr(module, mutant.function, original)


# ---- one run and its checks -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSetup:
    canonical: str
    fixture: Path  # the committed fixture
    fixture_spec: object  # FixtureSpec
    expected_sha256: str  # metrics/fixture.json
    run: object  # RecipeRun: the regression recipe
    golden_test: str  # tests/test_golden.py


def _train_infer(fixture: Path, setup: RunSetup, out: Path, commands: tuple[str, ...] = ("train", "infer")) -> None:
    """What ptycho-train and ptycho-infer do for the recipe, through the library, in this process."""
    from ptychoreg.core.contract import load_npz
    from ptychoreg.core.inference import infer_to
    from ptychoreg.core.training import train_to
    from ptychoreg.harness.runner import RecipeRun

    # Resolved again inside the run, as the CLIs resolve it: a mutant of the resolution applies here.
    config = RecipeRun.of(setup.run.params, setup.run.recipe).config
    data = load_npz(fixture)
    if "train" in commands:
        train_to(out, config, data, log=lambda _: None)
    if "infer" in commands:
        infer_to(out, out / "model.pt", data, config.infer)


def _regression(fixture: Path, setup: RunSetup, out: Path) -> float:
    """Train + infer in this process; the seconds it took."""
    started = time.perf_counter()
    _train_infer(fixture, setup, out)
    return time.perf_counter() - started


def golden_failures(record_path: Path, golden_test: str) -> list[str]:
    """The golden tables that differ, as the `check_fixture` stage's pytest check reports them."""
    with tempfile.TemporaryDirectory(prefix="ptychoreg-junit-") as scratch:
        junit = Path(scratch) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{golden_test}::test_golden_numbers",
                        "--golden-record", str(record_path), f"--junitxml={junit}"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if not junit.is_file():
            raise PtychoError(golden_test, "the golden check did not run")
        failed = []
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                table = case.get("name", "").partition("[")[2].rstrip("]")
                failed.append(f"golden:{table}")
        return failed


def checked_run(setup: RunSetup, work: Path) -> tuple[list[str], float | None]:
    """One run of the checks with whatever code is loaded now; the checks that failed, and its seconds."""
    from ptychoreg.core.contract import load_npz
    from ptychoreg.core.fileio import file_digest
    from ptychoreg.harness.fixture import generate
    from ptychoreg.harness.golden import golden_record, write_record
    from ptychoreg.harness.regress import ORIENTATION_TOLERANCE, read_run, orientation_error

    failed = []
    rebuilt = work / "fixture.npz"
    try:
        generate(setup.canonical, setup.fixture_spec, output=rebuilt, metadata_out=work / "fixture.json")
        if file_digest(rebuilt) != setup.expected_sha256:
            failed.append("fixture bytes")
    except Exception as exc:  # noqa: BLE001 - any failure of the generator is a catch
        failed.append(f"fixture build ({type(exc).__name__})")
    fixture = setup.fixture
    try:
        if not orientation_error(fixture) < ORIENTATION_TOLERANCE:
            failed.append("orientation")
    except Exception as exc:  # noqa: BLE001
        failed.append(f"orientation ({type(exc).__name__})")
    out = work / "run"
    try:
        seconds = _regression(fixture, setup, out)
        data = load_npz(fixture)
        run = read_run(out, data.object.shape)
    except Exception as exc:  # noqa: BLE001 - a crash of train or infer is the regression failing
        return failed + [f"run ({type(exc).__name__}: {str(exc)[:80]})"], None
    failed += [name for name, ok in (("loss falls", run["last_loss"] < run["first_loss"]),
                                     ("object frame", run["frame_ok"]), ("finite", run["finite_ok"])) if not ok]
    record = work / "golden_record.json"
    write_record(record, golden_record(out, data))
    failed += golden_failures(record, setup.golden_test)
    return failed, seconds


def _timed(setup: RunSetup, work: Path) -> float:
    return _regression(setup.fixture, setup, Path(tempfile.mkdtemp(dir=work)))


def run_mutants(setup: RunSetup, mutants: tuple[Mutant, ...], max_slowdown: float, pairs: int, work: Path,
                log: Callable[[str], None] = print, max_memory_growth: float = 0.05, memory_pairs: int = 2) -> dict:
    """Run the control, then every mutant; a mutant that no check catches gets a runtime and a memory
    comparison."""
    started = time.perf_counter()
    control_dir = work / "control"
    control_dir.mkdir(parents=True)
    control_failed, _ = checked_run(setup, control_dir)
    if control_failed:
        raise PtychoError(None, f"the unmutated control fails {', '.join(control_failed)}: the golden values or the "
                                "fixture are stale (run `dvc repro regress`, then `./tasks golden` if intended)")
    log(f"control: every check passes ({time.perf_counter() - started:.1f} s)")
    results = {}
    for mutant in mutants:
        mutant_dir = work / mutant.name
        mutant_dir.mkdir()
        with applied(mutant):
            caught_by, _ = checked_run(setup, mutant_dir)
        if not caught_by:
            ratio = _runtime_ratio(setup, mutant, pairs, work)
            if ratio > 1 + max_slowdown:
                caught_by.append(f"runtime (x{ratio:.2f} against the control, limit x{1 + max_slowdown:.2f})")
            # A fresh process applies a mutant by its catalogue name; one made elsewhere (a test's) is not measured.
            catalogued = any(m.name == mutant.name for m in MUTANTS)
            ratios = memory_ratios(setup, mutant.name, memory_pairs, mutant_dir) if catalogued else {}
            grown = {command: ratio for command, ratio in ratios.items() if ratio > 1 + max_memory_growth}
            caught_by += [f"memory ({command} peak x{ratio:.2f} against the control, limit x{1 + max_memory_growth:.2f})"
                          for command, ratio in grown.items()]
        results[mutant.name] = {"class": mutant.bug_class, "what": mutant.what, "caught": bool(caught_by),
                                "caught_by": caught_by}
        log(f"{'caught ' if caught_by else 'ESCAPED'} {mutant.name}: {', '.join(caught_by) or 'no check failed'}")
    caught = sum(r["caught"] for r in results.values())
    return {"score": caught / len(results), "caught": caught, "mutants": len(results),
            "escaped": sorted(n for n, r in results.items() if not r["caught"]),
            "seconds": time.perf_counter() - started, "results": results}


def _measured_run(setup: RunSetup, mutant_name: str, out: Path) -> dict[str, float]:
    """Train, then infer, each in a fresh process with the mutant applied there; each process's peak RSS (MB)."""
    from ptychoreg.harness.runner import run_cli

    run, me = setup.run, "ptychoreg.harness.mutation"
    # This process has trained in-process and is larger than a child: run_cli measures each child's own peak.
    peaks = {}
    for command, threads in (("train", run.config.train.threads), ("infer", run.config.infer.threads)):
        record = run_cli(me, [mutant_name, command, str(setup.fixture), str(out), run.params or "", run.recipe or ""],
                         out.parent / f"{out.name}-{command}.log", threads)
        peaks[command] = record.peak_rss_mb
    return peaks


def memory_ratios(setup: RunSetup, mutant_name: str, pairs: int, work: Path) -> dict[str, float]:
    """Median over `pairs` of (mutant peak / control peak) for train and for infer, fresh processes each."""
    ratios = {"train": [], "infer": []}
    for i in range(pairs):
        control = _measured_run(setup, NO_MUTANT, work / f"memory-control{i}")
        mutated = _measured_run(setup, mutant_name, work / f"memory-mutant{i}")
        for command in ratios:
            ratios[command].append(mutated[command] / control[command])
    return {command: statistics.median(values) for command, values in ratios.items()}


def _runtime_ratio(setup: RunSetup, mutant: Mutant, pairs: int, work: Path) -> float:
    """Median over interleaved pairs of (mutant seconds / control seconds), both in this process."""
    ratios = []
    for i in range(pairs):
        control = _timed(setup, work)
        with applied(mutant):
            mutated = _timed(setup, work)
        ratios.append(mutated / control)
    return statistics.median(ratios)


def report_markdown(result: dict) -> str:
    lines = [
        "# Mutation score: what the fast regression catches",
        "",
        "Generated by the `mutation` stage (`python -m ptychoreg.cli.mutation`). Each mutant is one known bug",
        "class of this field, applied in-process for one run; the run rebuilds the fixture, trains and infers",
        "on it and applies the regression's checks (see `ptychoreg/harness/mutation.py`).",
        "",
        f"**{result['caught']} of {result['mutants']} mutants caught** (score {result['score']:.2f}), "
        f"in {result['seconds']:.0f} s.",
        "",
        "| mutant | bug class | the mistake | caught by |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in result["results"].items():
        lines.append(f"| `{name}` | {r['class']} | {r['what']} | {', '.join(r['caught_by']) or '**ESCAPED**'} |")
    return "\n".join(lines) + "\n"


def metrics(result: dict) -> dict:
    return {k: result[k] for k in ("score", "caught", "mutants", "escaped", "seconds")} | {
        "caught_by": {name: r["caught_by"] for name, r in result["results"].items()}}


def _run_mutated(argv: list[str]) -> int:
    """`python -m ptychoreg.harness.mutation MUTANT train|infer FIXTURE OUT PARAMS RECIPE`: one command of the
    regression with the mutant applied in this fresh process (`none`: the control), so its resources are
    its own."""
    from ptychoreg.harness.runner import RecipeRun

    name, command, fixture, out, params, recipe = argv
    setup = RunSetup("", Path(fixture), None, "", RecipeRun.of(params or None, recipe or None), "")
    mutant = None if name == NO_MUTANT else next((m for m in MUTANTS if m.name == name), None)
    if name != NO_MUTANT and mutant is None:
        raise SystemExit(f"ptychoreg.harness.mutation: no mutant {name!r} in the catalogue")
    with applied(mutant) if mutant else contextlib.nullcontext():
        _train_infer(Path(fixture), setup, Path(out), (command,))
    return 0


if __name__ == "__main__":
    raise SystemExit(_run_mutated(sys.argv[1:]))
