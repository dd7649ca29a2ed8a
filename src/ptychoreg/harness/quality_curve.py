"""What each training budget buys: the quality stage's recipe run at scaled epoch counts.

Issue 13's fallback question ("if 0.8 is out of reach in 5 minutes, what does each budget buy?") has one
honest answer: run the same two phases with every epoch count scaled, on one machine in one run, and
record the figures against the seconds. Not a DVC stage (it costs several quality stages, ~20 minutes
at scales 0.25-2); its committed record, `metrics/quality_curve.json`, is a plot in dvc.yaml and a
table in the report. Regenerate it with `python -m ptychoreg.cli.quality_curve` (docs/quality-experiments.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterator

from ptychoreg.config import QualitySettings
from ptychoreg.harness.quality import run_quality


def scaled_settings(settings: QualitySettings, scale: float) -> QualitySettings:
    """The stage's recipe with both phases' epochs scaled (at least one each; no second phase stays
    none). The floor is not part of the recipe: a small budget may score low, that is what the curve shows."""
    if scale <= 0:
        raise ValueError(f"budget scale must be positive, got {scale}")
    return dataclasses.replace(
        settings,
        max_epochs=max(1, round(settings.max_epochs * scale)),
        refine_epochs=max(1, round(settings.refine_epochs * scale)) if settings.refine_epochs else 0,
    )


def point(scale: float, metrics: dict, timing: dict) -> dict:
    """One point of the curve, from one `run_quality` result."""
    q = metrics["quality"]
    return {
        "scale": scale,
        "epochs": [phase["epochs"] for phase in metrics["phases"]],
        "train_s": round(timing["train_s"], 1),
        "amplitude_ssim": round(q["amplitude"]["ssim"], 4),
        "phase_ssim": round(q["phase"]["ssim"], 4),
        "amplitude_correlation": round(q["amplitude"]["correlation"], 4),
        "phase_correlation": round(q["phase"]["correlation"], 4),
        "frc_mean": round(q["frc_mean"], 4),
    }


def budget_points(data: str, settings: QualitySettings, scales: list[float], out: Path, params_path: str | None = None,
                  log: Callable[[str], None] = print) -> Iterator[dict]:
    """Run the quality recipe at each scale (ascending) into `out`/scale-<s>; yield each point as it lands."""
    for scale in sorted(set(scales)):
        scaled = scaled_settings(settings, scale)
        log(f"budget x{scale:g}: {scaled.max_epochs} + {scaled.refine_epochs} epochs")
        p = point(scale, *run_quality(data, scaled, out / f"scale-{scale:g}", params_path=params_path, log=log,
                                         enforce=False))
        log(f"budget x{scale:g}: {p['train_s']:.0f} s of training, amplitude SSIM {p['amplitude_ssim']:.3f}, "
            f"phase SSIM {p['phase_ssim']:.3f}")
        yield p


def curve_record(data: str, settings: QualitySettings, points: list[dict]) -> dict:
    """The committed record: the recipe it scaled, and the points so far."""
    return {"data": data, "settings": dataclasses.asdict(settings), "points": points}
