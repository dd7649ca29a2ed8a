"""Hardening through the real CLIs: one module-wide run of the matrix (tests/hardening_matrix.py),
asserted area by area; a failure lists every failed case with what was observed."""

from __future__ import annotations

import pytest

from conftest import CANONICAL
from hardening_matrix import BAD_DATA, FIXTURE_KILL_STEPS, TRAIN_KILL_STEPS, run_matrix

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    return run_matrix(tmp_path_factory.mktemp("hardening"), CANONICAL, log=lambda _: None)


def rows(matrix, area):
    selected = [r for r in matrix.rows if r.area == area]
    assert selected, area
    return selected


@pytest.mark.parametrize("area", ["bad input", "bad parameter", "unwritable output", "bad model", "tampering",
                                  "interrupted run", "concurrency"])
def test_area(matrix, area):
    failed = [f"{r.case} ({r.command}): {r.observed}" for r in rows(matrix, area) if not r.ok]
    assert not failed, "\n".join(failed)


def test_every_bad_input_reaches_every_cli(matrix):
    cases = {(r.case, r.command) for r in rows(matrix, "bad input")}
    assert cases == {(case, command) for case in BAD_DATA for command in ("profile", "fixture", "train", "infer")}


def test_every_kill_landed_at_its_step(matrix):
    killed = [r.observed.split(";")[0] for r in rows(matrix, "interrupted run") if r.case.startswith("SIGKILL")]
    assert killed == [f"killed at '{name}'" for name in FIXTURE_KILL_STEPS + TRAIN_KILL_STEPS]
