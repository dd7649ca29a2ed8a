"""harness.runner: the data a harness command runs on by default is what the params file names; a command
run is reaped once."""

from __future__ import annotations

import warnings

import pytest

from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.runner import project_data, run_cli


def test_the_fixture_and_the_canonical_dataset_come_from_the_params_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("data: {canonical: elsewhere/full.npz}\n"
                      "fixture: {subset_size: 8, strategy: first, output: small/fix.npz, sidecar: null,\n"
                      "          min_unique_positions: 2, min_subset: 4, gridsize: 1, diffraction_dtype: float32,\n"
                      "          complex_dtype: complex64}\n")
    assert project_data(params) == ("small/fix.npz", "elsewhere/full.npz")
    params.write_text("data: {canonical: elsewhere/full.npz}\n")
    with pytest.raises(PtychoError, match="fixture"):
        project_data(params)


def test_a_command_reaped_by_wait4_is_not_left_for_popen_to_reap_again(tmp_path):
    """run_cli reaps its child itself (os.wait4, for the rusage); a Popen not told so warns "still running"
    when dropped and waits for the pid again later, when the pid may be another child's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = run_cli("ptychoreg.cli.infer", ["--help"], tmp_path / "help.log", threads=1)
    assert record.seconds > 0 and "usage" in record.log.read_text()
    assert not [w for w in caught if "still running" in str(w.message)], [str(w.message) for w in caught]
