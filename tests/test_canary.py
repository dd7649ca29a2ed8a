"""The numerics canary (ptychoreg.harness.canary, ptycho-canary): membership of the pinned set is computed,
a difference names its operation, and the cross-vendor check runs the canary and every recipe natively and
under qemu-user as an AMD and an Intel CPU model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from ptychoreg.harness import canary


def _canary(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ptychoreg.cli.canary", *args], capture_output=True, text=True,
                          cwd=ROOT, stdin=subprocess.DEVNULL, env={**os.environ, **env})


def test_the_canary_covers_every_path_a_recipe_can_take():
    from ptychoreg.core.config import ModelConfig, TrainConfig

    parts = " | ".join(canary.recorded())
    for loss in TrainConfig.model_fields["loss"].annotation.__args__:
        assert f"loss {loss}" in parts
    for heads in ModelConfig.model_fields["heads"].annotation.__args__:
        for upsampling in ModelConfig.model_fields["upsampling"].annotation.__args__:
            assert f"network {heads}/{upsampling} backward" in parts
    for needed in ("fft backward", "merge of a group", "adam step", "gridsize 2", "inference and stitching, gridsize 2",
                   "one-cycle", "quality figures", "ePIE"):
        assert needed in parts, needed


def test_the_verdict_computes_every_recorded_part():
    """One real canary run (`ptycho-canary` runs `--json` in a child): in the set, every recorded part
    was computed and matched; outside it, the line names the parts that differ (a part computed but not
    recorded, or recorded but no longer computed, differs too: canary.json is stale then)."""
    verdict = _canary()
    matches = verdict.returncode == 0
    assert ("in the pinned set: the numerics canary matches" in verdict.stdout) == matches, verdict.stdout + verdict.stderr
    assert f"({len(canary.recorded())} parts;" in verdict.stdout if matches else "canary parts differ: " in verdict.stdout


def test_a_difference_names_the_part_and_the_environment_problem():
    recorded = canary.recorded()
    part = "network shared/subpixel backward"
    changed = {**recorded, part: "0" * 16}
    ok, line = canary.verdict(changed, recorded, [])
    assert not ok and line == f"OUTSIDE the pinned set (canary parts differ: {part})"
    ok, line = canary.verdict(recorded, recorded, ["PTYCHOREG_NUMERICS=native: each library chooses its own kernels"])
    assert not ok and "PTYCHOREG_NUMERICS=native" in line and "differ" not in line
    assert canary.verdict(recorded, recorded, []) [0]
    assert canary.differing({"a": "1"}, {"a": "1", "b": "2"}) == ["b"]  # a part one side lacks differs


def test_the_native_opt_out_is_outside_the_set_without_computing():
    proc = _canary(PTYCHOREG_NUMERICS="native")
    assert proc.returncode == 1 and "OUTSIDE the pinned set" in proc.stdout and "native" in proc.stdout, proc.stdout
    assert "differ" not in proc.stdout  # the opt-out alone decides: no canary hashes were compared


def test_the_approximate_instruction_scan(tmp_path):
    log = tmp_path / "in_asm.log"
    log.write_text("0x4010856f18:  0f 59 c1   mulps    %xmm1, %xmm0\n"
                   "0x4010856f20:  41 0f 52 e0              rsqrtps  %xmm8, %xmm4\n"
                   "0x4010856f30:  62 f2 7d 48 4c c1        vrcp14ps %zmm1, %zmm0\n"
                   "0x4010856f40:  c5 fc 51 c1              vsqrtps  %ymm1, %ymm0\n")
    found = canary._approximate_instructions(log)
    assert len(found) == 2 and "rsqrtps" in found[0] and "vrcp14ps" in found[1]


# MKL's vector math takes the square roots of torch.sqrt, Tensor.sqrt/rsqrt and `** 0.5` on float tensors,
# with rsqrtps in the pinned COMPATIBLE branch: results that differ by CPU vendor. The workflow keeps its
# square roots in numpy, math, fused Adam or complex abs (correctly rounded everywhere).
TORCH_ROOT = re.compile(r"(?<![\w.])(?!np\.|math\.|numpy\.)[\w\]\)]+\.r?sqrt\(|\*\*\s*0?\.5\b")
WORKFLOW = ("core", "evaluation")


def test_the_workflow_takes_no_square_root_in_mkl_vector_math():
    offenders = []
    for package in WORKFLOW:
        for path in sorted((ROOT / "src" / "ptychoreg" / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                if TORCH_ROOT.search(code) and not re.search(r"\b(np|math|numpy)\.r?sqrt\(", code):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
                if "optim.Adam(" in code and "fused=True" not in code:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: Adam without fused=True: {line.strip()}")
    assert not offenders, "square roots through MKL's vector math differ by CPU vendor:\n" + "\n".join(offenders)


def _qemu():
    if shutil.which(canary.QEMU) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{canary.QEMU} is missing: .ci/run installs qemu-user")
        pytest.skip("qemu-user is not installed (apt-get install qemu-user)")


@pytest.mark.slow
def test_qemu_log_shows_an_approximate_square_root_where_one_runs(tmp_path):
    """The scan's positive control: torch.sqrt under the pins runs MKL's rsqrtps, and the scan finds it."""
    _qemu()
    log = tmp_path / "in_asm.log"
    proc = subprocess.run([canary.QEMU, "-cpu", canary.QEMU_MODELS["AMD"], "-d", "in_asm,nochain", "-D", str(log),
                           sys.executable, "-c", "from ptychoreg.core.cli import setup_process; setup_process(); "
                           "import torch; print(torch.sqrt(torch.rand(4096)).sum().item())"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any("rsqrt" in line for line in canary._approximate_instructions(log))


@pytest.mark.slow
def test_cross_vendor_every_recipe_and_the_canary_agree(fixture_path, tmp_path):
    _qemu()
    report = tmp_path / "crossvendor.json"
    proc = _canary("cross-vendor", "--params", "params.yaml", "--data", str(fixture_path), "--report", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(report.read_text())
    from ptychoreg.core.config import read_params, recipe_names

    recipes = recipe_names(read_params(ROOT / "params.yaml"))
    assert result["ok"] and result["parts"] == len(canary.recorded()) + len(recipes)
    assert set(result["differ_from_native"]) == {f"{v} ({m})" for v, m in canary.QEMU_MODELS.items()}
    assert "no approximate instruction ran" in proc.stdout
