"""The sensitivity matrix's library: one cell's arguments and run, and the table over the cells."""

from __future__ import annotations

import json

import pytest

from conftest import project_settings
from ptychoreg.harness.runner import RecipeRun
from ptychoreg.harness.sensitivity import read_cells, run_cell, sensitivity_table


def test_the_cells_run_single_patterns():
    assert RecipeRun.of("params.yaml", "sensitivity").config.model.gridsize == 1  # images = groups


def test_table_orders_cells_by_epochs_then_images(tmp_path):
    stats = {"median": 1.0, "min": 0.9, "max": 1.1, "cv": 0.1, "n": 2}
    for epochs, images in ((2, 16), (1, 64), (1, 16)):
        cell = {"max_epochs": epochs, "n_images": images, "settings": {}, "train_s": stats, "infer_s": stats,
                "total_s": stats, "train_rss_mb": stats, "infer_rss_mb": stats, "artifacts": {"bundle_bytes": 1, "reconstruction_bytes": 2, "total_bytes": 3}}
        (tmp_path / f"e{epochs}_n{images}.json").write_text(json.dumps(cell))  # as dvc.yaml's matrix names them
    cells = read_cells(tmp_path)
    assert [(c["max_epochs"], c["n_images"]) for c in cells] == [(1, 16), (1, 64), (2, 16)]
    rows = sensitivity_table(cells).splitlines()[2:]
    assert rows[0].startswith("| 1 | 16 |") and rows[2].startswith("| 2 | 16 |")


@pytest.mark.slow
def test_one_real_cell(fixture_path):
    cell = run_cell(str(fixture_path), 1, 16, project_settings("sensitivity", repeats=2), RecipeRun.of("params.yaml", "sensitivity"))
    assert cell["deterministic"] and cell["total_s"]["n"] == 2 and cell["total_s"]["median"] > 0
    assert cell["train_rss_mb"]["median"] > 0 and cell["infer_cpu_s"]["n"] == 2
    assert cell["artifacts"]["bundle_bytes"] > 0 and cell["n_images"] == 16
