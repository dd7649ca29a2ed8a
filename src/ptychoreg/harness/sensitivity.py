"""Runtime sensitivity (seed B1.B): how wall time and artifact sizes scale with epochs and images.

A matrix max_epochs x n_images of real train + infer runs on the canonical dataset, CPU only, plus one
reference run on every pattern, which is what the fixture saves us from.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ptychoreg.config import parse_section
from ptychoreg.errors import PtychoError
from ptychoreg.harness.runner import dir_bytes, run_train_infer, spread


@dataclass(frozen=True)
class SensitivitySettings:
    max_epochs: list[int] = field(default_factory=lambda: [1, 2])
    n_images: list[int] = field(default_factory=lambda: [16, 64])  # groups of one pattern (gridsize 1)
    repeats: int = 3
    width: int = 8
    threads: int = 1
    reference_full: bool = True  # also time one epoch on every pattern of the dataset

    @classmethod
    def from_params(cls, values: dict | None, where: str = "params.yaml") -> "SensitivitySettings":
        settings = cls(**parse_section(cls, "sensitivity", values, where))
        if min(settings.max_epochs) < 1 or min(settings.n_images) < 1 or settings.repeats < 1:
            raise PtychoError(where, "max_epochs, n_images and repeats must be >= 1", key="sensitivity")
        return settings


def _cell(data: str, epochs: int, n_images: int | None, settings: SensitivitySettings, work: Path, params_path) -> dict:
    train_args = ["--max-epochs", str(epochs), "--width", str(settings.width), "--gridsize", "1"]
    infer_args = []
    if n_images is not None:
        train_args += ["--n-groups", str(n_images)]
        infer_args += ["--n-groups", str(n_images)]
    if params_path:
        train_args += ["--params", params_path]
    trains, infers, sizes, hashes = [], [], {}, set()
    for repeat in range(settings.repeats):
        out = work / f"e{epochs}-n{n_images}-r{repeat}"
        train, infer = run_train_infer(data, out, train_args, infer_args, settings.threads)
        trains.append(train.seconds)
        infers.append(infer.seconds)
        sizes = {
            "bundle_bytes": (out / "model.pt").stat().st_size,
            "reconstruction_bytes": (out / "reconstruction.npz").stat().st_size,
            "png_bytes": sum(p.stat().st_size for p in out.glob("*.png")),
            "total_bytes": dir_bytes(out),
        }
        hashes.add(json.loads((out / "summary.json").read_text())["stitched_sha256"])
        shutil.rmtree(out)
    return {
        "max_epochs": epochs,
        "n_images": n_images if n_images is not None else "all",
        "train_s": spread(trains),
        "infer_s": spread(infers),
        "total_s": spread([t + i for t, i in zip(trains, infers)]),
        "artifacts": sizes,
        # Same bytes on every repeat here (never compared across machines: float output differs by CPU).
        "deterministic": len(hashes) == 1,
    }


def run_sensitivity(data: str, settings: SensitivitySettings, params_path: str | None = None,
                    log: Callable[[str], None] = print) -> dict:
    cells = {}
    with tempfile.TemporaryDirectory(prefix="ptycho-sensitivity-") as tmp:
        plan = [(e, n) for e in settings.max_epochs for n in settings.n_images]
        if settings.reference_full:
            plan.append((1, None))
        for epochs, n_images in plan:
            name = f"epochs{epochs}_images{n_images if n_images is not None else 'all'}"
            cells[name] = _cell(data, epochs, n_images, settings, Path(tmp), params_path)
            log(f"{name}: total {cells[name]['total_s']['median']:.2f} s (median of {settings.repeats}), "
                f"artifacts {cells[name]['artifacts']['total_bytes']:,} bytes")
    return {"settings": asdict(settings), "data": data, "cells": cells}


def sensitivity_table(metrics: dict) -> str:
    lines = [
        "| max_epochs | n_images | train s | infer s | total s (median, min-max) | bundle bytes | reconstruction bytes | all artifacts |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in metrics["cells"].values():
        t = cell["total_s"]
        a = cell["artifacts"]
        lines.append(
            f"| {cell['max_epochs']} | {cell['n_images']} | {cell['train_s']['median']:.2f} | {cell['infer_s']['median']:.2f} "
            f"| {t['median']:.2f} ({t['min']:.2f}-{t['max']:.2f}) | {a['bundle_bytes']:,} | {a['reconstruction_bytes']:,} "
            f"| {a['total_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"
