"""The regression measures its own power: known bug classes, applied one at a time, must each be caught.

Each mutant is a small realistic mistake, applied in-process by replacing one function (every reference to
it in our loaded modules) for the duration of one run, so an interrupted run leaves the source untouched.
A run does what `dvc repro` does with the code under test, in-process, on the regression's settings:

1. rebuild the fixture from the canonical dataset; its sha256 must equal `metrics/fixture.json`
   (`fixture bytes`); stitching the committed fixture's true patches must give back its object
   (`orientation`);
2. train and infer through the CLIs' `main` on the committed fixture, as `regress` does when the fixture
   was pulled (`run` when either fails), with the regression's own checks (`loss falls`, `finite`,
   `object frame`);
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
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ptychoreg.errors import PtychoError

# Modules a run loads; imported before patching, so every binding of a replaced function is found.
RUN_MODULES = ("ptychoreg.cli.train", "ptychoreg.cli.infer", "ptychoreg.training", "ptychoreg.inference",
               "ptychoreg.fixture", "ptychoreg.harness.regress", "ptychoreg.harness.golden", "ptychoreg.model.bundle")


@dataclass(frozen=True)
class Mutant:
    name: str
    bug_class: str
    what: str  # the mistake, in words
    module: str  # where the replaced function lives
    function: str
    make: Callable[[Callable], Callable]  # original -> mutated


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


# ---- the curated bug classes ----------------------------------------------------------------------------

def _with_data(change: Callable) -> Callable[[Callable], Callable]:
    """A loader that returns what `change(data)` makes of the validated dataset."""
    from dataclasses import replace

    def make(load_npz):
        def load(path, layout=None):
            data = load_npz(path, layout=layout)
            return replace(data, **change(data))
        return load
    return make


def _stitch_with(change: Callable) -> Callable[[Callable], Callable]:
    def make(stitch):
        def mutated(patches, ycoords, xcoords, canvas_shape, trusted):
            return stitch(*change(patches, ycoords, xcoords), canvas_shape, trusted)
        return mutated
    return make


def _first_patterns(build_fixture):
    """PtychoPINN's fixture bug: the first n patterns paired with the stratified subset's coordinates."""
    def mutated(data, spec):
        fixture = build_fixture(data, spec)
        n = len(fixture.indices)
        for key in ("diffraction", "diff3d"):
            fixture.arrays[key] = data.diffraction[:n].astype(fixture.arrays[key].dtype)
        return fixture
    return mutated


def _flipped_layout(detect_layout):
    def mutated(*args, **kwargs):
        decision = detect_layout(*args, **kwargs)
        if decision.evidence.startswith("ambiguous"):
            flipped = "HWN" if decision.layout == "NHW" else "NHW"
            return type(decision)(flipped, decision.evidence)
        return decision
    return mutated


def _float64_tensors(group_tensors):
    def mutated(diffraction, groups, norm_factor):
        import torch

        tensors = group_tensors(diffraction, groups, norm_factor)
        return type(tensors)(tensors.inputs.to(torch.float64), tensors.measured.to(torch.float64), tensors.offsets)
    return mutated


def _unseeded_batches(batches):
    def mutated(tensors, batch_size, generator=None):
        import torch

        if generator is not None:
            generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
        return batches(tensors, batch_size, generator)
    return mutated


def _ignores_n_groups(build_config):
    def mutated(params=None, overrides=None, where="params"):
        overrides = {section: {k: v for k, v in values.items() if k != "n_groups"}
                     for section, values in (overrides or {}).items()}
        return build_config(params, overrides, where)
    return mutated


def _amplitude_units(poisson_nll):
    def mutated(predicted, measured, intensity_scale):
        return poisson_nll(predicted, measured, 1.0)  # the intensity scale forgotten: not photon counts
    return mutated


def _untrained(load_bundle):
    def mutated(path, device="cpu"):
        import torch

        bundle = load_bundle(path, device)
        torch.manual_seed(0)
        for layer in bundle.model.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        return bundle
    return mutated


def _keeps_activations(predict_patches):
    """Activation logging left on: a forward hook on every layer keeps each training batch's outputs (and
    so their memory) for the whole run. The numbers do not change."""
    kept = []

    def mutated(model, inputs, offsets, window):
        if model.training and not getattr(model, "_logging_activations", False):
            for layer in model.modules():
                if not any(layer.children()):
                    layer.register_forward_hook(lambda m, i, o: kept.append(o) if m.training else None)
            model._logging_activations = True
        return predict_patches(model, inputs, offsets, window)
    return mutated


def _materialised_stitch(stitch):
    """A vectorised stitcher that puts every patch on a complex128 canvas of its own before summing: the
    stack's memory (patterns x object frame x 16 bytes, ~0.9 GB for the canonical scan) for the same
    object."""
    def mutated(patches, ycoords, xcoords, canvas_shape, trusted):
        stack = np.ones((len(patches), *canvas_shape), np.complex128)  # every page written: resident
        result = stitch(patches, ycoords, xcoords, canvas_shape, trusted)
        return result if stack.size else None
    return mutated


def _slower(fraction: float) -> Callable[[Callable], Callable]:
    def make(function):
        def mutated(*args, **kwargs):
            started = time.perf_counter()
            result = function(*args, **kwargs)
            until = time.perf_counter() + fraction * (time.perf_counter() - started)
            while time.perf_counter() < until:
                pass
            return result
        return mutated
    return make


MUTANTS = (
    Mutant("diffraction-float16", "diffraction rounded or quantised",
           "diffraction quantised to float16 when loaded", "ptychoreg.contract", "load_npz",
           _with_data(lambda d: {"diffraction": d.diffraction.astype(np.float16).astype(d.diffraction.dtype)})),
    Mutant("diffraction-rounded", "diffraction rounded or quantised",
           "amplitudes rounded to whole numbers when loaded", "ptychoreg.contract", "load_npz",
           _with_data(lambda d: {"diffraction": np.round(d.diffraction)})),
    Mutant("first-n-patterns", "patterns paired with the wrong coordinates",
           "fixture takes the first n patterns but the stratified subset's coordinates", "ptychoreg.fixture",
           "build_fixture", lambda f: _first_patterns(f)),
    Mutant("coords-shifted-by-one", "patterns paired with the wrong coordinates",
           "coordinates rolled by one position against the patterns when loaded", "ptychoreg.contract", "load_npz",
           _with_data(lambda d: {"xcoords": np.roll(d.xcoords, 1), "ycoords": np.roll(d.ycoords, 1)})),
    Mutant("stitch-mirrored", "stitching mirrored, transposed or off by one pixel",
           "stitcher point-reflects every patch", "ptychoreg.geometry", "stitch",
           _stitch_with(lambda p, y, x: (p[:, ::-1, ::-1], y, x))),
    Mutant("stitch-transposed", "stitching mirrored, transposed or off by one pixel",
           "stitcher transposes every patch", "ptychoreg.geometry", "stitch",
           _stitch_with(lambda p, y, x: (np.swapaxes(p, 1, 2), y, x))),
    Mutant("stitch-off-by-one", "stitching mirrored, transposed or off by one pixel",
           "stitcher places patches one pixel low", "ptychoreg.geometry", "stitch",
           _stitch_with(lambda p, y, x: (p, y + 1, x))),
    Mutant("subpixel-shift-sign", "sub-pixel shift with the wrong sign",
           "Fourier sub-pixel ramp conjugated (shifts the other way)", "ptychoreg.geometry", "_fourier_ramp",
           lambda ramp: lambda size, fy, fx: np.conj(ramp(size, fy, fx))),
    Mutant("float64-into-model", "float64 reaching the model",
           "group tensors handed to the network as float64", "ptychoreg.dataset", "group_tensors",
           lambda f: _float64_tensors(f)),
    Mutant("unseeded-shuffle", "an unseeded random choice",
           "mini-batch order drawn from an unseeded generator", "ptychoreg.dataset", "batches",
           lambda f: _unseeded_batches(f)),
    Mutant("cli-ignores-n-groups", "a CLI that ignores --n-groups",
           "the CLIs' --n-groups never reaches the config", "ptychoreg.config", "build_config",
           lambda f: _ignores_n_groups(f)),
    Mutant("probe-scaled", "the probe mis-scaled or conjugated",
           "probe multiplied by 1.1 when loaded", "ptychoreg.contract", "load_npz",
           _with_data(lambda d: {"probe": d.probe * np.asarray(1.1, dtype=d.probe.real.dtype)})),
    Mutant("probe-conjugated", "the probe mis-scaled or conjugated",
           "probe conjugated when loaded", "ptychoreg.contract", "load_npz",
           _with_data(lambda d: {"probe": np.conj(d.probe)})),
    Mutant("loss-amplitude-units", "the loss in the wrong units",
           "Poisson NLL computed on amplitudes, not photon counts", "ptychoreg.model.physics", "poisson_nll",
           lambda f: _amplitude_units(f)),
    Mutant("layout-flipped", "the ambiguous layout decided wrongly",
           "the N == H == W case decided the other way", "ptychoreg.contract", "detect_layout",
           lambda f: _flipped_layout(f)),
    Mutant("untrained-weights", "inference on untrained weights",
           "the bundle's weights replaced by a fresh initialisation at load", "ptychoreg.model.bundle", "load_bundle",
           lambda f: _untrained(f)),
    Mutant("slower-30pct", "a 30 % slowdown",
           "every command (train, infer) burns 30 % more time", "ptychoreg.cli._common", "run", _slower(0.3)),
    Mutant("training-keeps-activations", "memory growth in training",
           "a forward hook keeps every layer's output of every training batch", "ptychoreg.model.network",
           "predict_patches", lambda f: _keeps_activations(f)),
    Mutant("stitch-materialises-canvases", "memory growth in inference",
           "the stitcher stacks every patch on a canvas of its own before summing", "ptychoreg.geometry", "stitch",
           lambda f: _materialised_stitch(f)),
)

NO_MUTANT = "none"  # the control, for `python -m ptychoreg.harness.mutation`


# ---- one run and its checks -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSetup:
    canonical: str
    fixture: Path  # the committed fixture
    fixture_spec: object  # FixtureSpec
    expected_sha256: str  # metrics/fixture.json
    regress: object  # RegressSettings (max_epochs overridden for speed by the caller if wanted)
    params_path: str | None
    golden_test: str  # tests/test_golden.py


def _regression(fixture: Path, setup: RunSetup, out: Path) -> float:
    """Train + infer through the CLIs' main functions, in this process; the seconds it took."""
    from ptychoreg.cli import infer as infer_cli
    from ptychoreg.cli import train as train_cli
    from ptychoreg.harness.regress import train_args
    from ptychoreg.harness.runner import params_args

    settings = setup.regress
    common = ["--accelerator", "cpu", "--threads", str(settings.threads)]
    started = time.perf_counter()
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        code = train_cli.main(["--data", str(fixture), "--output-dir", str(out), *common,
                               *train_args(settings, setup.params_path)])
        if code == 0:
            code = infer_cli.main(["--model", str(out / "model.pt"), "--data", str(fixture), "--output-dir", str(out),
                                   *common, *params_args(setup.params_path)])
    if code != 0:
        lines = log.getvalue().strip().splitlines()
        raise PtychoError(None, f"exit {code}: {lines[-1] if lines else 'no output'}")
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
    from ptychoreg.contract import load_npz
    from ptychoreg.fileio import file_digest
    from ptychoreg.fixture import generate
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
    """Train + infer, each in a fresh process with the mutant applied there; each process's peak RSS (MB)."""
    from ptychoreg.harness.regress import train_args
    from ptychoreg.harness.runner import params_args, run_cli

    settings = setup.regress
    common = ["--accelerator", "cpu", "--threads", str(settings.threads)]
    me = "ptychoreg.harness.mutation"
    # This process has trained in-process and is larger than a child: run_cli measures each child's own peak.
    train = run_cli(me, [mutant_name, "ptychoreg.cli.train", "--data", str(setup.fixture), "--output-dir", str(out),
                         *common, *train_args(settings, setup.params_path)], out.parent / f"{out.name}-train.log",
                    settings.threads)
    infer = run_cli(me, [mutant_name, "ptychoreg.cli.infer", "--model", str(out / "model.pt"), "--data", str(setup.fixture),
                         "--output-dir", str(out), *common, *params_args(setup.params_path)],
                    out.parent / f"{out.name}-infer.log", settings.threads)
    return {"train": train.peak_rss_mb, "infer": infer.peak_rss_mb}


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
    """`python -m ptychoreg.harness.mutation MUTANT MODULE ARGS...`: run a CLI module's main with the mutant
    applied in this fresh process (`none`: the control), so its resources are its own."""
    import importlib

    name, module, *args = argv
    command = importlib.import_module(module)
    if name == NO_MUTANT:
        return command.main(args)
    mutant = next((m for m in MUTANTS if m.name == name), None)
    if mutant is None:
        raise SystemExit(f"ptychoreg.harness.mutation: no mutant {name!r} in the catalogue")
    with applied(mutant):
        return command.main(args)


if __name__ == "__main__":
    sys.exit(_run_mutated(sys.argv[1:]))
