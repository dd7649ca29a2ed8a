from __future__ import annotations

import pytest

from ptychoreg.config import build_config, legacy_view, read_params
from ptychoreg.errors import PtychoError


def test_defaults_then_params_then_overrides():
    config = build_config({"train": {"max_epochs": 7, "batch_size": 4}}, {"train": {"max_epochs": 3, "batch_size": None}})
    assert config.train.max_epochs == 3  # CLI beats params.yaml
    assert config.train.batch_size == 4  # params.yaml beats defaults; None means "not given"
    assert config.train.learning_rate == 1e-3  # default


def test_ints_accepted_for_floats_and_null_for_optional():
    config = build_config({"train": {"learning_rate": 1, "n_groups": None}})
    assert config.train.learning_rate == 1.0 and config.train.n_groups is None


@pytest.mark.parametrize("params,fragment", [
    ({"train": {"epochs": 3}}, "key 'train.epochs': unknown setting"),
    ({"train": {"max_epochs": "3"}}, "key 'train.max_epochs': expected int"),
    ({"train": {"loss": "mse"}}, "key 'train.loss': 'mse' is not one of poisson, mae"),
    ({"model": {"gridsize": 5}}, "key 'model.gridsize': must be 1, 2 or 3"),
    ({"train": {"val_fraction": 1.5}}, "key 'train.val_fraction'"),
    ({"model": {"probe_big": "yes"}}, "expected bool"),
    ({"model": [1, 2]}, "key 'model': expected a mapping"),
])
def test_bad_params_are_one_line_errors(params, fragment):
    with pytest.raises(PtychoError) as info:
        build_config(params, where="params.yaml")
    assert fragment in str(info.value) and str(info.value).startswith("params.yaml")


def test_legacy_view_is_derived():
    config = build_config({}, {"model": {"gridsize": 2}, "train": {"max_epochs": 5}})
    legacy = legacy_view(config, size=64, nphotons=1e6, intensity_scale=31.25, n_groups=10)
    assert legacy["gridsize"] == 2 and legacy["nepochs"] == 5 and legacy["N"] == 64
    assert legacy["n_groups"] == 10 and legacy["n_images"] == 40
    assert legacy["object.big"] is True and legacy["probe.big"] is True


def test_read_params_errors(tmp_path):
    with pytest.raises(PtychoError, match="params file not found"):
        read_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(PtychoError, match="not valid YAML at line"):
        read_params(bad)


def test_project_params_are_valid():
    from conftest import ROOT

    build_config(read_params(ROOT / "params.yaml"), where="params.yaml")
