from __future__ import annotations

import numpy as np
from PIL import Image

from ptychoreg.plots import line_chart_png, object_panels_png


def test_line_chart(tmp_path):
    path = tmp_path / "loss.png"
    line_chart_png(path, {"train": ([1, 2, 3], [3.0, 2.0, 1.5]), "validation": ([1, 2, 3], [None, 2.5, 1.7])},
                   title="loss", xlabel="epoch", ylabel="loss")
    with Image.open(path) as image:
        assert image.size == (720, 420)
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels != 255).any(axis=-1).mean() > 0.01  # something was drawn


def test_object_panels(tmp_path):
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:25] = True
    values = np.linspace(0, 1, 600).reshape(20, 30)
    object_panels_png(tmp_path / "a.png", [("a", values), ("b", values)], mask, 0.0, 1.0, colourmap="viridis")
    with Image.open(tmp_path / "a.png") as image:
        assert image.size[0] > 2 * 30 * 2
