"""The run's figures, drawn with matplotlib: the loss curve and the amplitude / phase panels.

Only the `plots` stages and `ptycho-plots` import this module: the timed train and infer CLIs write data
(history.json, reconstruction.npz), never pictures, so matplotlib's import stays out of their timings and
an edit here reruns only the plots stages. Every PNG is written atomically, with no timestamp in it, so
the same data gives the same bytes.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display, the same renderer on every machine

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ptychoreg.core.fileio import write_bytes  # noqa: E402
from ptychoreg.evaluation.quality import remove_global_phase  # noqa: E402

_OUTSIDE = "#282828"  # unscanned pixels


def _save(figure, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    write_bytes(path, buffer.getvalue())


def loss_curve_png(path: str | os.PathLike, history: Sequence[dict], loss: str) -> None:
    """Training and validation loss per epoch (history.json's `epochs`)."""
    figure, axes = plt.subplots(figsize=(7.2, 4.2), layout="constrained")
    epochs = [h["epoch"] for h in history]
    axes.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    val = [(h["epoch"], h["val_loss"]) for h in history if h.get("val_loss") is not None]
    if val:
        axes.plot(*zip(*val), marker="s", label="validation")
    axes.set(title=f"training loss ({loss})", xlabel="epoch", ylabel="loss per pixel")
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def object_panels_png(path: str | os.PathLike, panels: Sequence[tuple[str, np.ndarray]], mask: np.ndarray,
                      vmin: float, vmax: float, colourmap: str = "gray") -> None:
    """Side-by-side images on one colour scale; pixels outside `mask` (not scanned) drawn dark."""
    figure, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.8, 3.8), layout="constrained",
                                squeeze=False)
    cmap = plt.get_cmap(colourmap).with_extremes(bad=_OUTSIDE)
    for ax, (title, values) in zip(axes[0], panels):
        image = ax.imshow(np.ma.masked_where(~mask, values), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.85)
    _save(figure, path)


def run_figures(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                truth: np.ndarray | None = None, labels: Sequence[str] | None = None) -> list[Path]:
    """The figures of train + infer run folders: loss_curve.png from the first history.json, and
    amplitude.png / phase.png with one panel per reconstruction.npz (titled by `labels`, default the
    folder names), beside the true object when `truth` is given. Returns the paths written."""
    runs, out = [Path(d) for d in run_dirs], Path(out_dir)
    written = []
    history_file = next((r / "history.json" for r in runs if (r / "history.json").exists()), None)
    if history_file:
        history = json.loads(history_file.read_text())
        loss_curve_png(out / "loss_curve.png", history["epochs"], history.get("loss", "poisson"))
        written.append(out / "loss_curve.png")
    amp_panels, phase_panels, mask = [], [], None
    for run, label in zip(runs, labels or [r.name for r in runs]):
        if not (run / "reconstruction.npz").exists():
            continue
        with np.load(run / "reconstruction.npz") as z:
            obj, region = z["object"].astype(np.complex128), z["mask"]
        mask = region if mask is None else mask & region
        if truth is not None:
            obj, _ = remove_global_phase(obj, truth, region)  # phases compare only after the global offset
        amp_panels.append((f"{label}: amplitude", np.abs(obj)))
        phase_panels.append((f"{label}: phase", np.angle(obj)))
    if not amp_panels:
        return written
    amp_scale, phase_scale = amp_panels[0][1], phase_panels[0][1]
    if truth is not None:
        amp_scale, phase_scale = np.abs(truth), np.angle(truth)
        amp_panels.append(("truth: amplitude", amp_scale))
        phase_panels.append(("truth: phase", phase_scale))
    # One colour scale per figure, from the truth when there is one, over the scanned region.
    object_panels_png(out / "amplitude.png", amp_panels, mask, float(amp_scale[mask].min()), float(amp_scale[mask].max()))
    object_panels_png(out / "phase.png", phase_panels, mask, float(phase_scale[mask].min()),
                      float(phase_scale[mask].max()), colourmap="viridis")
    return written + [out / "amplitude.png", out / "phase.png"]
