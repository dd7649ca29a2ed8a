from __future__ import annotations

import json

import matplotlib.image
import numpy as np

from ptychoreg.plots import loss_curve_png, object_panels_png, run_figures


def _pixels(path):
    return matplotlib.image.imread(path)[..., :3]


def test_loss_curve(tmp_path):
    path = tmp_path / "loss.png"
    history = [{"epoch": 1, "train_loss": 3.0, "val_loss": None}, {"epoch": 2, "train_loss": 2.0, "val_loss": 2.5}]
    loss_curve_png(path, history, "poisson")
    pixels = _pixels(path)
    assert pixels.shape[:2] == (420, 720)
    assert (pixels < 0.9).any(axis=-1).mean() > 0.01  # something was drawn


def test_object_panels_mark_the_unscanned_region(tmp_path):
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:25] = True
    values = np.linspace(0, 1, 600).reshape(20, 30)
    object_panels_png(tmp_path / "a.png", [("a", values), ("b", values)], mask, 0.0, 1.0, colourmap="viridis")
    assert _pixels(tmp_path / "a.png").shape[1] > 2 * 30 * 2


def test_same_data_same_bytes(tmp_path):
    history = {"loss": "poisson", "epochs": [{"epoch": 1, "train_loss": 3.0, "val_loss": 2.0}]}
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.json").write_text(json.dumps(history))
    first = run_figures([run], tmp_path / "a")
    second = run_figures([run], tmp_path / "b")
    assert [p.name for p in first] == ["loss_curve.png"]
    assert first[0].read_bytes() == second[0].read_bytes()
