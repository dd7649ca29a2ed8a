"""The hardening matrix (used by tests/test_hardening.py): bad inputs, interrupted runs, tampered files and
concurrent DVC runs, each through the real CLIs (or DVC) as subprocesses, with what was expected and what
was observed.

Expectations for every refused input: a non-zero exit, one stderr line naming the file and the problem
(no traceback), no partial output, and the previous good outputs byte-for-byte untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from conftest import project_values
from ptychoreg.core.fileio import file_digest
from ptychoreg.evaluation.synthetic import synthetic_arrays

N = 24  # patterns in the synthetic datasets
# What the matrix's CLIs read instead of the project's params.yaml: the project's harness sections they read
# (those have no defaults) with the fixture's floor lowered, and a small regression recipe.
PARAMS = yaml.safe_dump({"fixture": {**project_values("fixture"), "min_subset": 16}, "regress": project_values("regress"),
                         "recipes": {"regression": {"model": {"width": 8}, "train": {"max_epochs": 2}}}}, sort_keys=False)
# Where an interrupted run is killed (tests/stop_at.py events): data loaded, after each epoch, and the worst
# moment, each output complete and not yet moved into place.
LOADED = "return:ptychoreg.core.contract.load_npz"
FIXTURE_KILL_STEPS = [LOADED, "rename:fixture.npz", "rename:fixture.json"]
TRAIN_KILL_STEPS = [LOADED, "log:epoch   1/", "log:epoch   2/", "rename:model.pt", "rename:history.json"]


@dataclass(frozen=True)
class Row:
    area: str
    case: str
    command: str
    expected: str
    observed: str
    ok: bool


def _cli(command: str, *args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", f"ptychoreg.cli.{command}", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (hidden temporaries included) with the sha256 of its bytes."""
    return {str(p.relative_to(folder)): file_digest(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _save(path: Path, arrays: dict) -> Path:
    np.savez(path, **arrays)
    return path


# ---- bad datasets: name -> (builder, fragment the one-line error must contain) ----------------------

def _altered(**changes) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        arrays = synthetic_arrays(n=N)
        for key, value in changes.items():
            if value is None:
                arrays.pop(key)
            else:
                arrays[key] = value(arrays) if callable(value) else value
        return _save(path, arrays)
    return build


def _with_value(value):
    def change(arrays):
        bad = arrays["diffraction"].copy()
        bad[1, 2, 3] = value
        return bad
    return change


def _raw(data: bytes | None) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)
        return path
    return build


def _truncated(path: Path) -> Path:
    _altered()(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _pickled(path: Path) -> Path:
    arrays = synthetic_arrays(n=N)
    arrays["notes"] = np.array([{"a": 1}], dtype=object)
    np.savez(path, **arrays)
    return path


def _ambiguous(path: Path) -> Path:
    arrays = synthetic_arrays(n=16)
    arrays["diffraction"] = np.ones((16, 16, 16))
    return _save(path, arrays)


BAD_DATA = {
    "truncated npz": (_truncated, "not a readable .npz archive"),
    "not a zip file": (_raw(b"diffraction,probe\n1,2\n"), "not a zip file"),
    "empty file": (_raw(b""), "empty file"),
    "directory given as a file": (_raw(None), "is a directory"),
    "missing diffraction": (_altered(diffraction=None), "key 'diffraction': required key missing"),
    "missing probeGuess": (_altered(probeGuess=None), "key 'probeGuess': required key missing"),
    "missing xcoords": (_altered(xcoords=None), "key 'xcoords': required key missing"),
    "missing ycoords": (_altered(ycoords=None), "key 'ycoords': required key missing"),
    "wrong ndim (2-D stack)": (_altered(diffraction=lambda a: a["diffraction"].reshape(N, -1)), "expected 3 dimensions"),
    "frames not matching the probe": (_altered(diffraction=lambda a: a["diffraction"][:, :8, :8]), "do not match the 16x16 probe"),
    "coordinate length mismatch": (_altered(ycoords=lambda a: a["ycoords"][:-2]), "coordinate length mismatch"),
    "NaN in diffraction": (_altered(diffraction=_with_value(np.nan)), "contains 1 NaN"),
    "Inf in diffraction": (_altered(diffraction=_with_value(np.inf)), "contains 1 Inf"),
    "negative amplitude": (_altered(diffraction=_with_value(-1.0)), "negative amplitude"),
    "integer counts": (_altered(diffraction=lambda a: np.round(a["diffraction"] ** 2).astype(np.int64)), "integer int64"),
    "complex diffraction": (_altered(diffraction=lambda a: a["diffraction"].astype(np.complex128)), "complex values"),
    "pickled object array": (_pickled, "pickled object array"),
    "probe with no energy": (_altered(probeGuess=lambda a: np.zeros_like(a["probeGuess"])), "no signal: every probe is all zeros"),
    "patterns with no signal": (_altered(diffraction=lambda a: np.zeros_like(a["diffraction"])), "no signal: every pattern is all zeros"),
    "pattern energy overflows": (_altered(diffraction=_with_value(1e200)), "energy (sum of squares) is not finite"),
    "ambiguous layout, no override": (_ambiguous, "ambiguous layout"),
}


class Matrix:
    """Runs the cases in a scratch folder and collects rows."""

    def __init__(self, work: Path, log: Callable[[str], None] = lambda _: None):
        self.work, self.log, self.rows = work, log, []
        work.mkdir(parents=True, exist_ok=True)
        (work / "params.yaml").write_text(PARAMS)
        self.good = _save(work / "good.npz", synthetic_arrays(n=N))
        self.outputs = {name: work / "good" / name for name in ("profile", "fixture", "train", "infer")}

    def args_for(self, command: str, data: Path, out: Path, model: Path | None = None) -> list:
        """The command line of one CLI reading `data` and writing under `out`."""
        return {
            "profile": ["profile", "--source", data, "--metrics-out", out / "profile.json", "--report", out / "profile.md"],
            "fixture": ["fixture", "--source", data, "--output", out / "fixture.npz", "--subset-size", 16],
            "train": ["train", "--data", data, "--output-dir", out, "--max-epochs", 1, "--width", 2],
            "infer": ["infer", "--model", model or self.outputs["train"] / "model.pt", "--data", data, "--output-dir", out],
        }[command]

    def _run(self, args: list, params: Path | None = None) -> subprocess.CompletedProcess:
        return _cli(args[0], *args[1:], "--params", params or self.work / "params.yaml", cwd=self.work)

    def prepare(self) -> None:
        """The previous good outputs every refused run must leave untouched."""
        for name, out in self.outputs.items():
            proc = self._run(self.args_for(name, self.good, out))
            if proc.returncode != 0:
                raise RuntimeError(f"good {name} run failed: {proc.stderr.strip()}")
        self.before = snapshot(self.work / "good")

    def refused(self, area: str, case: str, args: list, fragments: list[str], extra_check: Callable[[], str] | None = None,
                params: Path | None = None) -> Row:
        proc = self._run(args, params)
        lines = proc.stderr.strip().splitlines()
        line = lines[0] if lines else ""
        problems = []
        if proc.returncode == 0:
            problems.append("exit 0")
        if len(lines) != 1 or "Traceback" in proc.stderr:
            problems.append(f"{len(lines)} stderr lines")
        problems += [f"missing '{f}'" for f in fragments if f not in line]
        if snapshot(self.work / "good") != self.before:
            problems.append("good outputs changed")
        if extra_check:
            problems += [p for p in [extra_check()] if p]
        observed = f"exit {proc.returncode}: {line}" if not problems else f"exit {proc.returncode}: {line} [{'; '.join(problems)}]"
        row = Row(area, case, args[0], f"exit != 0, one line with {' and '.join(repr(f) for f in fragments)}, "
                  "outputs untouched", observed.replace(str(self.work) + "/", ""), not problems)
        self.rows.append(row)
        self.log(f"{'ok  ' if row.ok else 'FAIL'} {area}: {case} ({args[0]})")
        return row

    def bad_inputs(self) -> None:
        for case, (build, fragment) in BAD_DATA.items():
            path = build(self.work / f"bad-{case.replace(' ', '_').replace(',', '')}.npz")
            for name, out in self.outputs.items():
                self.refused("bad input", case, self.args_for(name, path, out), [path.name, fragment])

    def bad_parameters(self) -> None:
        fixture = self.args_for("fixture", self.good, self.outputs["fixture"])
        # 0 breaks the setting's own limit (config.py), before any file is read; the others need the data.
        for size, fragments in ((0, ["fixture.subset_size", "must be >= 1"]), (15, ["good.npz", "below the minimum 16"]),
                                (N + 1, ["good.npz", f"exceeds the {N} patterns"])):
            self.refused("bad parameter", f"subset size {size}", fixture[:-1] + [size], fragments)
        same = _save(self.work / "same_positions.npz", {**synthetic_arrays(n=N), "xcoords": np.full(N, 12.0), "ycoords": np.full(N, 12.0)})
        self.refused("bad parameter", "all positions identical", self.args_for("fixture", same, self.outputs["fixture"]),
                     ["same_positions.npz", "1 unique scan position"])
        misspelt = self.work / "misspelt.yaml"
        misspelt.write_text(PARAMS + "trian:\n  max_epochs: 1\n")  # a misspelt section, refused like a misspelt key
        self.refused("bad parameter", "misspelt section", self.args_for("train", self.good, self.outputs["train"]),
                     ["misspelt.yaml", "unknown section 'trian'"], params=misspelt)

    def unwritable_outputs(self) -> None:
        blocker = self.work / "blocker"
        blocker.write_text("a file where a folder should be")
        for name in self.outputs:
            self.refused("unwritable output", "output folder under a regular file",
                         self.args_for(name, self.good, blocker / "sub"), ["blocker", "cannot write output folder"])

    def bad_models(self) -> None:
        import torch

        good_model = self.outputs["train"] / "model.pt"
        payload = torch.load(good_model, weights_only=True)
        foreign = dict(payload, architecture=dict(payload["architecture"], width=4))
        torch.save(foreign, self.work / "other_arch.pt")
        data = good_model.read_bytes()
        (self.work / "truncated.pt").write_bytes(data[: len(data) // 2])
        marker = self.work / "payload_ran"
        (self.work / "pickle_payload.pt").write_bytes(_pickle_payload(marker))
        cases = {
            "bundle of another architecture": ("other_arch.pt", "architecture mismatch"),
            "truncated bundle": ("truncated.pt", "not a readable model bundle"),
            "bundle carrying a pickle payload": ("pickle_payload.pt", "refused"),
            "missing bundle": ("missing.pt", "model bundle not found"),
        }
        for case, (name, fragment) in cases.items():
            args = self.args_for("infer", self.good, self.outputs["infer"], model=self.work / name)
            self.refused("bad model", case, args, [name, fragment],
                         extra_check=lambda: "the payload ran" if marker.exists() else "")

    def tampered_fixture(self) -> None:
        fixture = self.outputs["fixture"] / "fixture.npz"
        sidecar = json.loads(fixture.with_suffix(".json").read_text())
        (self.work / "fixture_metrics.json").write_text(json.dumps({"sha256": sidecar["fixture"]["sha256"]}))
        data = bytearray(fixture.read_bytes())
        data[len(data) // 2] ^= 0x01
        tampered = self.work / "tampered.npz"
        tampered.write_bytes(bytes(data))
        metrics = self.work / "good" / "regression.json"
        args = ["regress", "--fixture", tampered, "--fixture-metrics", self.work / "fixture_metrics.json",
                "--metrics-out", metrics, "--runtime-plot", self.work / "good" / "runtime.json"]
        self.refused("tampering", "fixture altered, same size", args, ["tampered.npz", "does not match"],
                     extra_check=lambda: "regression ran" if metrics.exists() else "")

    def interrupted(self, source: Path, steps: list[str], command: str) -> None:
        """SIGKILL a run at each event (tests/stop_at.py); the previous outputs must stay valid and the
        next run succeed. The run stops itself at the step and says so, so the kill lands exactly there."""
        from ptychoreg.core.contract import load_npz
        from ptychoreg.core.model.bundle import load_bundle

        out = self.work / f"killed-{command}"
        args = (["fixture", "--source", source, "--output", out / "fixture.npz", "--subset-size", 64]
                if command == "fixture" else
                ["train", "--data", source, "--output-dir", out, "--max-epochs", 3, "--width", 8])
        first = self._run(args)
        if first.returncode != 0:
            raise RuntimeError(f"the first, uninterrupted {command} run failed: {first.stderr.strip()}")
        reference = snapshot(out)

        def valid() -> str:
            try:
                if command == "fixture":
                    load_npz(out / "fixture.npz")
                    json.loads((out / "fixture.json").read_text())
                else:
                    load_bundle(out / "model.pt")
                    json.loads((out / "history.json").read_text())
            except Exception as exc:  # any failure to read back is the finding
                return f"invalid after kill: {exc}"
            return ""

        for name in steps:
            reached = kill_at_step([sys.executable, "-m", f"ptychoreg.cli.{args[0]}", *map(str, args[1:]),
                                    "--params", str(self.work / "params.yaml")], name, cwd=self.work)
            problem = valid() if reached else "never reached the step"
            stray = [p for p in snapshot(out) if p not in reference]
            observed = (f"killed at '{name}'" if reached else "not killed") + (f"; {problem}" if problem else "; outputs valid")
            self.rows.append(Row("interrupted run", f"SIGKILL at step '{name}'", command,
                                 "killed there; previous outputs valid (temporaries allowed until the next run)",
                                 observed, not problem))
            self.log(f"{'ok  ' if not problem else 'FAIL'} interrupted {command} at '{name}' ({len(stray)} temporaries)")
        final = self._run(args)
        leftover = [p for p in snapshot(out) if p.startswith(".") or "/." in p]
        ok = final.returncode == 0 and not valid() and not leftover
        self.rows.append(Row("interrupted run", "next run after the kills", command,
                             "succeeds, outputs valid, stale temporaries removed",
                             f"exit {final.returncode}, {len(leftover)} temporaries left", ok))
        if command == "fixture":
            same = snapshot(out)["fixture.npz"] == reference["fixture.npz"]
            self.rows.append(Row("interrupted run", "fixture bytes after kills and rerun", command,
                                 "identical to the first run", "identical" if same else "different", same))

    def concurrent_repro(self) -> None:
        """Two `dvc repro` in one checkout: the second must fail at once and clearly, nothing corrupted.

        The first run's stage announces itself and then blocks on a FIFO until the second has finished, so
        the second always meets a running first (no sleeps); a second that waited for the lock instead of
        failing would hang and be stopped by the timeout."""
        repo = self.work / "dvc-repo"
        repo.mkdir()
        release = self.work / "release.fifo"
        os.mkfifo(release)
        env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="h", GIT_AUTHOR_EMAIL="h@h",
                   GIT_COMMITTER_NAME="h", GIT_COMMITTER_EMAIL="h@h")
        dvc = [sys.executable, "-m", "dvc"]
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
        subprocess.run([*dvc, "init", "-q"], cwd=repo, check=True, env=env)
        (repo / "dvc.yaml").write_text(f"stages:\n  slow:\n    cmd: echo STAGE-STARTED && cat {release} > /dev/null "
                                       "&& echo done > out.txt\n    outs:\n      - out.txt\n")
        first = subprocess.Popen([*dvc, "repro"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first_out = []
        for line in first.stdout:
            first_out.append(line)
            if line.strip() == "STAGE-STARTED":
                break
        try:
            second = subprocess.run([*dvc, "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
            returncode, stderr = second.returncode, second.stderr
        except subprocess.TimeoutExpired:
            returncode, stderr = None, "still waiting after 120 s"
        with open(release, "w"):
            pass  # lets the first run's stage finish
        first_out.append(first.communicate(timeout=120)[0])
        message = next((line for line in stderr.splitlines() if "ERROR" in line), stderr.strip()[:120])
        ok = (returncode not in (0, None) and "busy" in stderr and first.returncode == 0
              and (repo / "out.txt").read_text() == "done\n")
        self.rows.append(Row("concurrency", "second dvc repro while one runs", "dvc repro",
                             "fails at once naming the lock holder; first run completes",
                             f"exit {returncode}: {message}; first run exit {first.returncode}", ok))


def kill_at_step(argv: list[str], event: str, cwd: Path, timeout: float = 600) -> bool:
    """Run `argv` (`python -m MODULE ARGS`) until it stops itself at `event` (tests/stop_at.py), then SIGKILL
    it there. Returns whether it reached the event (False: it exited without passing there)."""
    import stop_at

    assert argv[1] == "-m", argv
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([argv[0], stop_at.__file__, event, *argv[2:]], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(timeout, proc.kill)  # a run that hangs elsewhere must not hang the matrix
    watchdog.start()
    try:
        reached = any(line.rstrip("\n") == f"{stop_at.ANNOUNCE}{event}" for line in proc.stderr)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
        watchdog.cancel()
    return reached


def _pickle_payload(marker: Path) -> bytes:
    """A torch checkpoint whose unpickling would create `marker` (it must never be run)."""
    import io
    import torch

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    torch.save({"format": "ptychoreg-model-bundle", "config": Payload()}, buffer)
    return buffer.getvalue()


def run_matrix(work: Path, canonical: Path | None, log: Callable[[str], None] = print) -> Matrix:
    matrix = Matrix(work, log)
    canonical = canonical.resolve() if canonical is not None else None  # the CLIs run inside `work`
    matrix.prepare()
    matrix.bad_inputs()
    matrix.bad_parameters()
    matrix.unwritable_outputs()
    matrix.bad_models()
    matrix.tampered_fixture()
    source = canonical if canonical is not None else _save(work / "big.npz", synthetic_arrays(n=400, size=64, step=4.6))
    matrix.interrupted(source, FIXTURE_KILL_STEPS, "fixture")
    matrix.interrupted(work / "killed-fixture" / "fixture.npz", TRAIN_KILL_STEPS, "train")
    matrix.concurrent_repro()
    return matrix
