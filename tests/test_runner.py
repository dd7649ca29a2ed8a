"""harness.runner: the data a harness command runs on by default is what the params file names."""

from __future__ import annotations

import pytest

from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.runner import project_data


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
