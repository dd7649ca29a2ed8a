"""Shared test helpers: small synthetic datasets built in the test, the real fixture, CLI runners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/pytorch_integration/minimal_dataset_v1.npz"
SIDECAR = FIXTURE.with_suffix(".json")
FIXTURE_METRICS = ROOT / "metrics/fixture.json"
CANONICAL = ROOT / "data/canonical/ptycho_sim_1087.npz"


def synthetic_arrays(n: int = 24, size: int = 16, layout: str = "NHW", seed: int = 0, step: float = 2.3) -> dict:
    """A small, physically consistent dataset: object, probe, jittered raster scan, far-field amplitudes."""
    from ptychoreg.geometry import extract_patches

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    extent = int(size + step * side + 4)
    yy, xx = np.mgrid[:extent, :extent]
    thickness = 0.5 + 0.5 * np.sin(yy / 3.0) * np.cos(xx / 4.0)
    obj = np.exp(-thickness) * np.exp(-1j * 1.5 * thickness)
    r = np.hypot(*np.mgrid[-size // 2 : size // 2, -size // 2 : size // 2])
    probe = np.exp(-(r / (size / 5)) ** 2) * np.exp(1j * 0.3 * r)
    probe = probe / np.sqrt(np.sum(np.abs(probe) ** 2))
    grid = np.arange(side) * step + size / 2 + 1.5
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    y = ys.ravel()[:n] + rng.normal(0, 0.2, n)
    x = xs.ravel()[:n] + rng.normal(0, 0.2, n)
    patches = extract_patches(obj, y, x, size)
    amplitude = np.abs(np.fft.fftshift(np.fft.fft2(patches * probe, norm="ortho"), axes=(-2, -1))) * (size / 2)
    diffraction = amplitude if layout == "NHW" else np.moveaxis(amplitude, 0, 2)
    return {
        "diffraction": np.ascontiguousarray(diffraction),
        "probeGuess": probe.astype(np.complex128),
        "objectGuess": obj.astype(np.complex128),
        "xcoords": x,
        "ycoords": y,
        "metadata": np.array(json.dumps({"nphotons": 1e6, "layout": layout})),
    }


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


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """A refused run: non-zero exit, exactly one stderr line naming what is wrong, no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
