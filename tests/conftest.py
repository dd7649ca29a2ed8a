"""Shared test helpers: small synthetic datasets built in the test, the real fixture, CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ptychoreg.core.cli import setup_process

setup_process()  # first: the pinned numerical environment, before numpy or torch load (ptychoreg.core.numerics)

import numpy as np  # noqa: E402
import pytest

from ptychoreg.evaluation.synthetic import synthetic_arrays  # noqa: F401  (tests import it from here)
from ptychoreg.harness.runner import project_data

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_REL, CANONICAL_REL = project_data(ROOT / "params.yaml")  # as params.yaml names them
FIXTURE = ROOT / FIXTURE_REL
SIDECAR = FIXTURE.with_suffix(".json")
FIXTURE_METRICS = ROOT / "metrics/fixture.json"
CANONICAL = ROOT / CANONICAL_REL


def pytest_addoption(parser):
    parser.addoption("--golden-record", default=None,
                     help="check this golden record (a JSON file, as the mutation stage writes) against the golden "
                          "values, instead of running the regression once in the test")
    parser.addoption("--golden-train", default=None,
                     help="with --golden-infer: check the run in these folders (the train_fixture and infer_fixture "
                          "stages' outputs)")
    parser.addoption("--golden-infer", default=None)
    parser.addoption("--quality-model", default=str(ROOT / "outputs/quality/refine/model.pt"),
                     help="the reference model the quality-model check reconstructs the fixture with")


def project_values(section: str) -> dict:
    """A harness section as the project's params.yaml states it (those settings have no defaults)."""
    from ptychoreg.core.config import read_params

    return dict(read_params(ROOT / "params.yaml")[section])


def project_settings(section: str, **changes):
    """The project's section `section` with `changes`, validated."""
    from ptychoreg.core.config import load_section

    return load_section(section, {section: {**project_values(section), **changes}})


def save_npz(path: Path, arrays: dict) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture
def synthetic(tmp_path):
    """Factory: write a synthetic dataset (optionally altered) and return its path."""

    def make(name: str = "data.npz", **changes) -> Path:
        kwargs = {k: changes.pop(k) for k in ("n", "size", "layout", "seed", "step") if k in changes}
        arrays = synthetic_arrays(**kwargs)
        for key, value in changes.items():
            if value is None:
                arrays.pop(key, None)
            else:
                arrays[key] = value
        return save_npz(tmp_path / name, arrays)

    return make


@pytest.fixture(scope="session")
def fixture_path() -> Path:
    if not FIXTURE.is_file():
        pytest.fail(f"{FIXTURE.relative_to(ROOT)} is missing: run `./tasks test` (it runs dvc pull and "
                    "dvc repro make_fixture) or `dvc repro make_fixture`")
    return FIXTURE


def run_cli(command: str, *args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m ptychoreg.cli.<command>` the way a user does, CUDA hidden."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", DVC_NO_ANALYTICS="1")
    return subprocess.run([sys.executable, "-m", f"ptychoreg.cli.{command}", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def dvc(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """`dvc ARGS` in `cwd`, DVC's analytics off; a failure fails the test with DVC's output."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=dict(os.environ, DVC_NO_ANALYTICS="1"),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    assert proc.returncode == 0, f"dvc {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def clone_sharing_cache(dest: Path) -> Path:
    """A fresh clone of this repository's HEAD at `dest` that uses this checkout's DVC cache: its data (the
    canonical dataset, what dvc.lock records) without a download."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    dvc("cache", "dir", "--local", str(ROOT / ".dvc" / "cache"), cwd=dest)
    return dest


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """A refused run: non-zero exit, exactly one stderr line naming what is wrong, no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
