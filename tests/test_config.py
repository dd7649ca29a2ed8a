from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, project_values
from ptychoreg.core.config import legacy_view, read_params, resolve_recipe
from ptychoreg.core.errors import PtychoError

RECIPES = {"recipes": {
    "base": {"train": {"max_epochs": 7, "batch_size": 4}, "model": {"width": 8}},
    "child": {"extends": "base", "train": {"max_epochs": 3}, "model": {"gridsize": 2}},
}}


def test_defaults_then_recipe_then_flags():
    config = resolve_recipe(RECIPES, "base", overrides={"train": {"max_epochs": 3, "batch_size": None}})
    assert config.train.max_epochs == 3  # a flag beats the recipe
    assert config.train.batch_size == 4  # the recipe beats the defaults; None means "not given"
    assert config.train.learning_rate == 1e-3  # default
    assert resolve_recipe({}, None) == resolve_recipe(RECIPES, None)  # no recipe: the built-in defaults


def test_a_recipe_extends_another_section_by_section():
    child = resolve_recipe(RECIPES, "child")
    assert (child.train.max_epochs, child.train.batch_size) == (3, 4)
    assert (child.model.width, child.model.gridsize) == (8, 2)


def test_ints_accepted_for_floats_and_null_for_optional():
    config = resolve_recipe({"recipes": {"r": {"train": {"learning_rate": 1, "n_groups": None}}}}, "r")
    assert config.train.learning_rate == 1.0 and config.train.n_groups is None


@pytest.mark.parametrize("recipe,fragment", [
    ({"train": {"epochs": 3}}, "key 'recipes.r.train.epochs': unknown setting (known: max_epochs, batch_size"),
    ({"train": {"max_epochs": "3"}}, "key 'recipes.r.train.max_epochs': expected int, got '3'"),
    ({"train": {"loss": "mse"}}, "key 'recipes.r.train.loss': 'mse' is not one of 'poisson', 'gaussian' or 'mae'"),
    ({"model": {"gridsize": 5}}, "key 'recipes.r.model.gridsize': 5 is not one of 1, 2 or 3"),
    ({"train": {"val_fraction": 1.5}}, "key 'recipes.r.train.val_fraction': must be < 1"),
    ({"model": {"probe_big": "yes"}}, "expected bool"),
    ({"model": [1, 2]}, "key 'recipes.r.model': expected a mapping"),
    ({"trian": {}}, "key 'recipes.r.trian': unknown setting (known: model, train, infer)"),
    ({"extends": "r"}, "recipes extend each other in a circle: r -> r"),
    ({"extends": "missing"}, "no recipe 'missing' (recipes: r)"),
])
def test_bad_recipes_are_one_line_errors(recipe, fragment):
    with pytest.raises(PtychoError) as info:
        resolve_recipe({"recipes": {"r": recipe}}, "r", where="params.yaml")
    message = str(info.value)
    assert fragment in message and message.startswith("params.yaml") and "\n" not in message


def test_a_bad_flag_names_the_command_line():
    with pytest.raises(PtychoError, match="params.yaml \\+ command line: key 'train.batch_size': must be >= 1"):
        resolve_recipe(RECIPES, "base", "params.yaml", {"train": {"batch_size": 0}})


def test_legacy_view_is_derived():
    config = resolve_recipe({}, None, overrides={"model": {"gridsize": 2}, "train": {"max_epochs": 5}})
    legacy = legacy_view(config, size=64, nphotons=1e6, intensity_scale=31.25, n_groups=10)
    assert legacy["gridsize"] == 2 and legacy["nepochs"] == 5 and legacy["N"] == 64
    assert legacy["n_groups"] == 10 and legacy["n_images"] == 40
    assert legacy["object.big"] is True and legacy["probe.big"] is True


def test_read_params_errors(tmp_path):
    with pytest.raises(PtychoError, match="params file not found"):
        read_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipes: [1, 2\n")
    with pytest.raises(PtychoError, match="not valid YAML at line"):
        read_params(bad)
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text("recipies:\n  r: {}\n")  # a misspelt section, refused like a misspelt key
    with pytest.raises(PtychoError) as info:
        read_params(misspelt)
    message = str(info.value)
    assert "misspelt.yaml" in message and "'recipies'" in message and "fixture, recipes, regress" in message and "\n" not in message


def test_every_project_recipe_resolves():
    from ptychoreg.core.config import recipe_names

    params = read_params(ROOT / "params.yaml")
    assert {"regression", "sensitivity", "quality_pretrain", "quality_refine"} <= set(recipe_names(params))
    for name in recipe_names(params):
        resolve_recipe(params, name, "params.yaml")


def test_every_harness_setting_is_stated_in_params_yaml_and_only_there():
    """The harness's sections have no defaults in config.py: params.yaml is the one place their values
    live, so a section or a key missing from it is refused by name."""
    from ptychoreg.core.config import SECTIONS, load_section

    params = read_params(ROOT / "params.yaml")
    assert list(params) == list(SECTIONS)
    for name, cls in SECTIONS.items():
        if cls is None:
            continue
        load_section(name, params)  # the project's values validate
        assert all(field.is_required() for field in cls.model_fields.values()), name
        first = next(iter(cls.model_fields))
        with pytest.raises(PtychoError, match=f"key '{name}.{first}'"):
            load_section(name, {name: {k: v for k, v in params[name].items() if k != first}})


def test_the_readme_params_edit_runs_only_the_new_cells(tmp_path):
    """The README's example: adding a pattern count to the sensitivity grid validates and makes DVC run
    exactly the new cells (and a changed reference setting exactly the reference stage): DVC's own view,
    on a copy of the project."""
    from ptychoreg.core.config import load_section
    from ptychoreg.harness.mutation import scratch_tree

    tree = scratch_tree(ROOT, tmp_path / "tree")  # a repository of its own
    before = _params_changed(tree)  # stages whose recorded params already differ here (none on a clean main)
    params = (tree / "params.yaml").read_text()
    grid = "  n_images: [16, 64, 1087]"
    epochs = "  epochs: 30\n  alpha:"  # reference:
    assert params.count(grid) == 1 and params.count(epochs) == 1
    params = params.replace(grid, "  n_images: [16, 64, 1087, 256]").replace(epochs, "  epochs: 31\n  alpha:")
    (tree / "params.yaml").write_text(params)
    edited = read_params(tree / "params.yaml")
    assert load_section("sensitivity", edited).n_images[-1] == 256 and load_section("reference", edited).epochs == 31
    assert _params_changed(tree) - before == {"sensitivity@1-256", "sensitivity@2-256", "reference"}


def _params_changed(tree) -> set[str]:
    """Stages `dvc status` reports as new or with a changed parameter."""
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=tree, capture_output=True, text=True,
                            check=True, env=dict(os.environ, DVC_NO_ANALYTICS="1"))
    changed = set()
    for stage, reasons in json.loads(status.stdout).items():
        for reason in reasons:
            deps = reason.get("changed deps", {}) if isinstance(reason, dict) else {}
            if isinstance(deps.get("params.yaml"), (dict, str)):
                changed.add(stage)
    return changed


def test_cli_flags_are_derived_from_the_sections():
    from ptychoreg.cli import infer, train
    from ptychoreg.core.config import InferConfig, ModelConfig, TrainConfig

    train_flags = {a.dest for a in train.parser()._actions}
    assert set(ModelConfig.model_fields) | set(TrainConfig.model_fields) | {"recipe", "params"} <= train_flags
    assert set(InferConfig.model_fields) <= {a.dest for a in infer.parser()._actions}
    args = train.parser().parse_args(["--data", "d", "--output-dir", "o", "--nepochs", "3", "--n-images", "5",
                                      "--no-probe-big", "--lr-schedule", "onecycle", "--gridsize", "2",
                                      "--heads", "shared", "--upsampling", "subpixel"])
    assert (args.max_epochs, args.n_groups, args.probe_big, args.lr_schedule, args.gridsize) == (3, 5, False, "onecycle", 2)
    assert (args.heads, args.upsampling) == ("shared", "subpixel")
    with pytest.raises(SystemExit):
        train.parser().parse_args(["--data", "d", "--output-dir", "o", "--gridsize", "4"])


def test_a_recipe_needs_its_file_and_no_params_file_is_implicit(tmp_path, monkeypatch):
    """A params.yaml in the working directory is not read unless --params names it."""
    from ptychoreg.cli import train
    from ptychoreg.core.cli import load_params, run_config

    (tmp_path / "params.yaml").write_text("recipes: {r: {train: {max_epochs: 99}}}\n")
    monkeypatch.chdir(tmp_path)
    assert load_params(None) == ({}, "defaults")
    parse = lambda *extra: train.parser().parse_args(["--data", "d", "--output-dir", "o", *extra])
    assert run_config(parse(), ("model", "train")).train.max_epochs == 30
    assert run_config(parse("--params", "params.yaml", "--recipe", "r"), ("model", "train")).train.max_epochs == 99
    with pytest.raises(PtychoError, match="--recipe r needs --params"):
        run_config(parse("--recipe", "r"), ("model", "train"))


def test_limits_are_checked_for_every_section():
    from ptychoreg.core.config import QualitySettings, SensitivitySettings

    with pytest.raises(PtychoError, match=r"key 'sensitivity.n_images\[1\]': must be >= 1"):
        SensitivitySettings.from_params(project_values("sensitivity") | {"n_images": [16, 0]})
    with pytest.raises(PtychoError, match="key 'sensitivity.max_epochs': must not be empty"):
        SensitivitySettings.from_params(project_values("sensitivity") | {"max_epochs": []})
    with pytest.raises(PtychoError, match="key 'quality.min_phase_ssim': must be < 1"):
        QualitySettings.from_params(project_values("quality") | {"min_phase_ssim": 1.5})
