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
    ({"train": {"loss": "mse"}}, "key 'train.loss': 'mse' is not one of poisson, gaussian, mae"),
    ({"model": {"gridsize": 5}}, "key 'model.gridsize': '5' is not one of 1, 2, 3"),
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
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text("trian:\n  max_epochs: 3\n")  # a misspelt section, refused like a misspelt key
    with pytest.raises(PtychoError) as info:
        read_params(misspelt)
    message = str(info.value)
    assert "misspelt.yaml" in message and "'trian'" in message and "model, train, infer" in message and "\n" not in message


def test_project_params_are_valid():
    from conftest import ROOT

    build_config(read_params(ROOT / "params.yaml"), where="params.yaml")


def test_every_params_section_is_defined_once_with_the_committed_values_as_defaults():
    """params.yaml holds each section of ptychoreg.config, in order, and every value equals the default
    there: a default cannot silently disagree with what the pipeline runs."""
    from conftest import ROOT
    from ptychoreg.config import SECTIONS

    params = read_params(ROOT / "params.yaml")
    assert list(params) == list(SECTIONS)
    for name, cls in SECTIONS.items():
        assert cls.from_params(params[name]) == cls(), f"params.yaml {name}: differs from config.py's defaults"


def test_cli_flags_are_derived_from_the_sections():
    from dataclasses import fields

    from ptychoreg.cli import infer, train
    from ptychoreg.config import InferConfig, ModelConfig, TrainConfig

    train_flags = {a.dest for a in train.parser()._actions}
    assert {f.name for f in fields(ModelConfig)} | {f.name for f in fields(TrainConfig)} <= train_flags
    assert {f.name for f in fields(InferConfig)} <= {a.dest for a in infer.parser()._actions}
    args = train.parser().parse_args(["--data", "d", "--output-dir", "o", "--nepochs", "3", "--n-images", "5",
                                      "--no-probe-big", "--lr-schedule", "onecycle"])
    assert (args.max_epochs, args.n_groups, args.probe_big, args.lr_schedule) == (3, 5, False, "onecycle")
    with pytest.raises(SystemExit):
        train.parser().parse_args(["--data", "d", "--output-dir", "o", "--gridsize", "4"])


def test_no_implicit_params_file(tmp_path, monkeypatch):
    """A params.yaml in the working directory is not read unless --params names it."""
    from ptychoreg.cli._common import load_params

    (tmp_path / "params.yaml").write_text("train: {max_epochs: 99}\n")
    monkeypatch.chdir(tmp_path)
    assert load_params(None) == ({}, "defaults")
    assert load_params("params.yaml")[0]["train"]["max_epochs"] == 99


def test_limits_are_checked_for_every_section():
    from ptychoreg.config import QualitySettings, SensitivitySettings

    with pytest.raises(PtychoError, match="key 'sensitivity.n_images': must be >= 1"):
        SensitivitySettings.from_params({"n_images": [16, 0]})
    with pytest.raises(PtychoError, match="key 'quality.min_ssim': must be < 1"):
        QualitySettings.from_params({"min_ssim": 1.5})
