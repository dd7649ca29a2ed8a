"""The pinned numerical environment (ptychoreg.core.numerics): set on import, inherited by children, said
plainly when a process is outside it; and what it buys: the same bytes under every ISA cap this CPU can
emulate within the pinned set. Whether another CPU family computes the same bytes is the canary's and the
cross-vendor check's to prove (tests/test_canary.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from ptychoreg.core import numerics


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def _bare_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV and k != numerics.OPT_OUT}
    return {**env, **extra}


def _has(*features: str) -> bool:
    from numpy._core._multiarray_umath import __cpu_features__

    return all(__cpu_features__.get(f, False) for f in features)


def test_setup_pins_every_variable_over_stray_values():
    proc = _python("from ptychoreg.core.cli import setup_process; setup_process(); import os, ptychoreg.core.numerics as n; import json; print(json.dumps({k: os.environ.get(k) for k in n.PINNED_ENV}))",
                   _bare_env(MKL_CBWR="AVX2"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == numerics.PINNED_ENV  # a stray MKL_CBWR does not change the bytes silently


def test_children_inherit_the_pins_and_native_opts_out():
    code = "from ptychoreg.core.cli import setup_process; setup_process(); import os, subprocess, sys; print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"MKL_CBWR\"))'], capture_output=True, text=True).stdout.strip())"
    assert _python(code, _bare_env()).stdout.strip() == numerics.PINNED_ENV["MKL_CBWR"]
    assert _python(code, _bare_env(PTYCHOREG_NUMERICS="native")).stdout.strip() == "None"


def test_child_env_pins_or_removes_every_variable():
    pinned, native = numerics.env(), numerics.env(native=True, extra={"ATEN_CPU_CAPABILITY": "default"})
    assert all(pinned[k] == v for k, v in numerics.PINNED_ENV.items()) and numerics.OPT_OUT not in pinned
    assert native[numerics.OPT_OUT] == "native" and native["ATEN_CPU_CAPABILITY"] == "default"
    assert not {"MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "NPY_DISABLE_CPU_FEATURES"} & set(native)


def test_environment_problems_name_the_opt_out_and_a_late_pin():
    native = _python("from ptychoreg.core.cli import setup_process; setup_process(); import ptychoreg.core.numerics as n; print(n.environment_problems())",
                     _bare_env(PTYCHOREG_NUMERICS="native"))
    assert "PTYCHOREG_NUMERICS=native" in native.stdout, native.stdout + native.stderr
    # torch loaded first, with the machine's own kernels: the pins came too late for it.
    late = _python("import torch; from ptychoreg.core.cli import setup_process; setup_process(); import ptychoreg.core.numerics as n; print(n.environment_problems())",
                   _bare_env())
    assert "torch loaded before ptychoreg pinned the environment" in late.stdout, late.stdout
    pinned = _python("from ptychoreg.core.cli import setup_process; setup_process(); import torch; import ptychoreg.core.numerics as n; print(n.environment_problems())",
                     _bare_env())
    assert pinned.stdout.strip() == "[]" or "torch runs its" in pinned.stdout, pinned.stdout  # a CPU without AVX2


@pytest.mark.skipif(not _has("AVX2", "FMA3"), reason="the CPU cannot run the pinned AVX2 kernels")
def test_torch_and_numpy_run_the_pinned_kernels():
    proc = _python("from ptychoreg.core.cli import setup_process; setup_process(); import torch; from numpy._core._multiarray_umath import __cpu_features__ as f; "
                   "print(torch.backends.cpu.get_cpu_capability(), f['X86_V4'], f['AVX512_ICL'])", _bare_env())
    assert proc.stdout.split() == ["AVX2", "False", "False"], proc.stdout + proc.stderr


# ---- what the pinning buys ------------------------------------------------------------------------------

# Within the pinned set, what this CPU can still be made to hide: MKL's dispatcher told the CPU has AVX2
# at most, as on an AVX2-only machine (CNR already fixes its code path; oneDNN, ATen and numpy are capped
# by the pins themselves, and numpy has no AVX-512 kernels left to hide).
EMULATED = {
    "pinned": {},
    "MKL sees AVX2 at most": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def _regression_bytes(fixture_path, out, extra_env) -> dict[str, str]:
    from ptychoreg.harness.runner import RecipeRun, run_train_infer

    run_train_infer(str(fixture_path), out, RecipeRun.of(str(ROOT / "params.yaml"), "regression"), env=extra_env, logs=out.parent / f"{out.name}-logs")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


@pytest.mark.slow
@pytest.mark.skipif(not _has("AVX2", "FMA3"), reason="the CPU cannot run the pinned AVX2 kernels")
def test_regression_bytes_are_the_same_under_every_emulated_cap(fixture_path, tmp_path):
    runs = {name: _regression_bytes(fixture_path, tmp_path / f"run{i}", env) for i, (name, env) in enumerate(EMULATED.items())}
    reference = runs["pinned"]
    assert set(reference) == {"model.pt", "history.json", "reconstruction.npz", "summary.json", "quality.json"}
    for name, files in runs.items():
        assert files == reference, f"{name}: {[f for f in files if files[f] != reference.get(f)]} differ from the pinned run"
    if _has("AVX512F"):
        # The pins are what makes this hold: here, with AVX-512, each library's own choice gives other bytes.
        native = _regression_bytes(fixture_path, tmp_path / "native", {numerics.OPT_OUT: "native"})
        assert native["reconstruction.npz"] != reference["reconstruction.npz"]
