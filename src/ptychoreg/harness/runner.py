"""Run the workflow's CLIs as subprocesses, the way a user does, and measure each run.

Each run gets the pinned numerical environment (ptychoreg.core.numerics), a pinned thread count, CUDA hidden,
and its own log and timings files; wall time and the child's own peak RSS are recorded.

Peak RSS: what wait4 reports for a child includes its parent's size at the fork (the kernel carries the
old image's peak across exec), so from a large parent (a test process, the mutation stage after training
in-process) every child would look as large as the parent. Each command is therefore started by a tiny
launcher (`_LAUNCHER`, stdlib only, ~10 MB), whose image is what the command inherits, and the launcher
reports the command's own wait4 peak. This works for any revision's CLIs, as the runtime gate needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ptychoreg.core import numerics
from ptychoreg.core.cli import PROJECT_PARAMS, load_params
from ptychoreg.core.config import Config, load_section, resolve_recipe
from ptychoreg.core.errors import PtychoError


@dataclass(frozen=True)
class RunRecord:
    command: str  # "train" or "infer"
    seconds: float
    peak_rss_mb: float
    log: Path
    timings: Path | None = None  # the command's --timings-out file (its phases), where it writes one
    cpu_s: float = 0.0  # user + system seconds of the command and its children


def cpu_env(threads: int, extra: dict | None = None) -> dict:
    """The child's environment: pinned numerics unless `extra` opts out (PTYCHOREG_NUMERICS=native, then
    `extra`'s own caps apply), pinned threads, CUDA hidden."""
    extra = extra or {}
    env = numerics.env(native=numerics.native_requested(extra), extra=extra)
    env.update({
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONHASHSEED": "0",
    })
    return env


# argv: PEAK_FILE COMMAND...; runs COMMAND, writes its peak RSS (KiB) to PEAK_FILE, exits with its status.
_LAUNCHER = """import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
child.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as peak:
    peak.write(str(usage.ru_maxrss))
sys.exit(128 - code if code < 0 else code)
"""


def run_cli(module: str, args: list[str], log: Path, threads: int, env: dict | None = None,
            timings: Path | None = None) -> RunRecord:
    """Run `python -m <module> args` with its output in `log`, `env` added to the environment; raise
    PtychoError with the log's last line on failure. With `timings`, the command writes its phases there
    (--timings-out). Modules are named in full, so the import graph (tests/stage_code.py) sees what runs."""
    command = module.rsplit(".", 1)[-1]
    log.parent.mkdir(parents=True, exist_ok=True)
    peak_file = log.with_name(log.name + ".peak")
    argv = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(peak_file),
            sys.executable, "-m", module, *args, *(["--timings-out", str(timings)] if timings else [])]
    with open(log, "wb") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=cpu_env(threads, env))
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    # Reaped here, so Popen is told; otherwise it waits for the pid again later, when it may be another child's.
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        lines = log.read_text(errors="replace").strip().splitlines()
        raise PtychoError(log, f"{command} exited {code}: {lines[-1] if lines else 'no output'}")
    peak_kib = int(peak_file.read_text())  # the command's own peak, from the launcher (KiB on Linux)
    peak_file.unlink()
    return RunRecord(command, seconds, peak_kib / 1024, log, timings, usage.ru_utime + usage.ru_stime)


@dataclass(frozen=True)
class RecipeRun:
    """A named run of a params file (its `recipes:`): the CLIs get `--params FILE --recipe NAME`, never
    settings turned back into flags; `config` is what the run resolves to (its thread counts pin the
    children's environment)."""
    params: str | None
    recipe: str | None
    config: Config
    flags: tuple = ()  # flags both CLIs take on top (with_threads)

    @classmethod
    def of(cls, params_path: str | None, recipe: str | None) -> "RecipeRun":
        params, source = load_params(params_path)
        return cls(params_path, recipe, resolve_recipe(params, recipe, source))

    def args(self) -> list[str]:
        return [*(["--params", self.params] if self.params else []), *(["--recipe", self.recipe] if self.recipe else []),
                *self.flags]

    def with_threads(self, threads: int) -> "RecipeRun":
        """The same run on `threads` threads (train and infer)."""
        config = self.config.model_copy(update={s: getattr(self.config, s).model_copy(update={"threads": threads})
                                                for s in ("train", "infer")})
        return RecipeRun(self.params, self.recipe, config, (*self.flags, "--threads", str(threads)))


def run_train(data: str, out: Path, run: RecipeRun, extra: tuple | list = (), env: dict | None = None,
              logs: Path | None = None, timings: bool = True) -> RunRecord:
    """ptycho-train `run` (and `extra` flags) into `out` (model.pt, history.json); its log and (with
    `timings`) its timings go to `logs` (default `out`), so a cached `out` holds only what is the same
    bytes on every run. The runtime gate passes timings=False: it needs wall time only."""
    logs = logs or out
    return run_cli("ptychoreg.cli.train", ["--data", data, "--output-dir", str(out), *run.args(), *extra],
                   logs / "train.log", run.config.train.threads, env,
                   timings=logs / "train_timings.json" if timings else None)


def run_infer(model: Path, data: str, out: Path, run: RecipeRun, extra: tuple | list = (), env: dict | None = None,
              logs: Path | None = None, timings: bool = True) -> RunRecord:
    logs = logs or out
    return run_cli("ptychoreg.cli.infer", ["--model", str(model), "--data", data, "--output-dir", str(out),
                                           *run.args(), *extra], logs / "infer.log", run.config.infer.threads, env,
                   timings=logs / "infer_timings.json" if timings else None)


def run_train_infer(data: str, out: Path, run: RecipeRun, train_extra: tuple | list = (), infer_extra: tuple | list = (),
                    env: dict | None = None, logs: Path | None = None,
                    timings: bool = True) -> tuple[RunRecord, RunRecord]:
    """Train `run` into `out`, then reconstruct `data` with that model into `out`."""
    train = run_train(data, out, run, train_extra, env, logs, timings)
    infer = run_infer(out / "model.pt", data, out, run, infer_extra, env, logs, timings)
    return train, infer


def project_data(params_path: str | os.PathLike = PROJECT_PARAMS) -> tuple[str, str]:
    """(the fixture, the canonical dataset) as the params file names them (`fixture.output`, `data.canonical`)."""
    params, source = load_params(str(params_path))
    return load_section("fixture", params, source).output, load_section("data", params, source).canonical


QUALITY_PHASES = ("quality_pretrain", "quality_refine")  # the quality stage's recipes; each starts from the one before


def train_phases(data: str, out: Path, runs: list[RecipeRun], epochs: list[int] | None = None,
                 env: dict | None = None) -> list[tuple[Path, Path]]:
    """Train each recipe of `runs` into `out`/<recipe>, each from the one before (`epochs`: each phase's
    --max-epochs instead of its recipe's), as the quality stages do. Returns (run folder, timings file) per phase."""
    phases, previous = [], None
    for i, run in enumerate(runs):
        folder, logs = out / run.recipe, out / f"{run.recipe}-logs"
        extra = ["--init-model", str(previous / "model.pt")] if previous else []
        extra += ["--max-epochs", str(epochs[i])] if epochs else []
        record = run_train(data, folder, run, extra, env=env, logs=logs)
        phases.append((folder, record.timings))
        previous = folder
    return phases


def read_timings(record: RunRecord) -> dict:
    """The timings file a train or infer run wrote (`phases`: wall seconds of each phase; train adds
    `epoch_seconds`)."""
    if record.timings is None or not record.timings.is_file():
        raise PtychoError(record.timings or record.log, "no timings file: the command did not finish")
    return json.loads(record.timings.read_text())


def time_python(code: str) -> float:
    """Wall seconds of `python -c code` in the environment the CLIs run in (start-up measurements)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdin=subprocess.DEVNULL, env=cpu_env(1))
    return time.perf_counter() - started


def breakdown(record: RunRecord, interpreter_s: float) -> dict[str, float]:
    """Where a run's wall seconds go: interpreter start, the command's own phases, and the rest (module
    imports before the command body, interpreter teardown)."""
    phases = read_timings(record)["phases"]
    rest = record.seconds - interpreter_s - sum(phases.values())
    return {"interpreter start": interpreter_s, **phases, "exit and module imports": rest}


def run_calibration(log: Path) -> RunRecord:
    """Time the fixed calibration workload (ptychoreg.harness.calibration) as a process, like the CLIs."""
    return run_cli("ptychoreg.harness.calibration", [], log, 1)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
