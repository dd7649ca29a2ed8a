"""PNG rendering with Pillow: object images and simple line charts.

Pillow imports in ~50 ms; matplotlib costs ~1 s, an eighth of the regression's whole budget, for
figures this simple. Every PNG is written atomically.
"""

from __future__ import annotations

import io
import math
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ptychoreg.fileio import write_bytes

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]
_OUTSIDE = (40, 40, 40)


def _font(size: int = 13):
    return ImageFont.load_default(size=size)


# Anchor colours of matplotlib's viridis (perceptually uniform), interpolated to 256 entries.
_VIRIDIS = [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
            (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)]


def _lut(colourmap: str) -> np.ndarray:
    if colourmap == "gray":
        return np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    anchors = np.asarray(_VIRIDIS, dtype=np.float64)
    at = np.linspace(0, len(anchors) - 1, 256)
    return np.stack([np.interp(at, np.arange(len(anchors)), anchors[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


def _to_rgb(values: np.ndarray, mask: np.ndarray, vmin: float, vmax: float, colourmap: str) -> np.ndarray:
    scaled = np.clip((values - vmin) / ((vmax - vmin) or 1.0), 0, 1)
    rgb = _lut(colourmap)[np.round(scaled * 255).astype(np.uint8)]
    rgb[~mask] = _OUTSIDE
    return rgb


def _save(image: Image.Image, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    write_bytes(path, buffer.getvalue())


def object_panels_png(
    path: str | os.PathLike,
    panels: Sequence[tuple[str, np.ndarray]],
    mask: np.ndarray,
    vmin: float,
    vmax: float,
    colourmap: str = "gray",
    zoom: int = 2,
) -> None:
    """Side-by-side images (e.g. reconstruction | truth) on one colour scale ("gray" or "viridis"),
    labelled, dark grey outside the scanned region."""
    font = _font()
    h, w = mask.shape
    header = 22
    footer = 20
    canvas = Image.new("RGB", (len(panels) * (w * zoom + 10) + 10, h * zoom + header + footer), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (title, values) in enumerate(panels):
        tile = Image.fromarray(_to_rgb(values, mask, vmin, vmax, colourmap)).resize((w * zoom, h * zoom), Image.NEAREST)
        x0 = 10 + i * (w * zoom + 10)
        canvas.paste(tile, (x0, header))
        draw.text((x0, 4), title, fill="black", font=font)
    draw.text((10, header + h * zoom + 3), f"scale {vmin:.3g} .. {vmax:.3g}; grey: outside the scanned region",
              fill="black", font=_font(11))
    _save(canvas, path)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + k * step for k in range(int((hi - start) / step) + 1)]


def line_chart_png(
    path: str | os.PathLike,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    size: tuple[int, int] = (720, 420),
) -> None:
    """A labelled line chart with markers, axes, ticks and a legend."""
    width, height = size
    left, right, top, bottom = 80, 20, 40, 55
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = _font()
    points = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    xs_all = [p[0] for p in points] or [0.0, 1.0]
    ys_all = [p[1] for p in points] or [0.0, 1.0]
    x_lo, x_hi = min(xs_all), max(xs_all)
    y_lo, y_hi = min(ys_all), max(ys_all)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    pad = (y_hi - y_lo) * 0.05 or max(abs(y_hi) * 0.05, 1e-12)
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def to_px(x, y):
        px = left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)
        py = height - bottom - (y - y_lo) / (y_hi - y_lo) * (height - top - bottom)
        return px, py

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for tick in _nice_ticks(y_lo, y_hi):
        _, py = to_px(x_lo, tick)
        draw.line([left - 4, py, left, py], fill="black")
        draw.line([left + 1, py, width - right - 1, py], fill=(230, 230, 230))
        draw.text((left - 6, py), f"{tick:.4g}", fill="black", font=font, anchor="rm")
    for tick in _nice_ticks(x_lo, x_hi, 8):
        px, _ = to_px(tick, y_lo)
        draw.line([px, height - bottom, px, height - bottom + 4], fill="black")
        draw.text((px, height - bottom + 6), f"{tick:.4g}", fill="black", font=font, anchor="mt")
    draw.text((width / 2, 12), title, fill="black", font=_font(15), anchor="mt")
    draw.text((width / 2, height - 18), xlabel, fill="black", font=font, anchor="mt")
    draw.text((10, top - 20), ylabel, fill="black", font=font)
    for i, (name, (xs, ys)) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        pts = [to_px(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for px, py in pts:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        lx, ly = width - right - 170, top + 8 + 16 * i
        draw.line([lx, ly + 6, lx + 18, ly + 6], fill=colour, width=3)
        draw.text((lx + 24, ly), name, fill="black", font=font)
    _save(image, path)
