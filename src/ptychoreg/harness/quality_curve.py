"""What each training budget buys: the quality stage's recipes run at scaled epoch counts.

Issue 13's fallback question ("if 0.8 is out of reach in 5 minutes, what does each budget buy?") has one
honest answer: run the same two phases with every epoch count scaled, on one machine in one run, and
record the figures against the seconds. Not a DVC stage (it costs several quality stages, ~20 minutes
at scales 0.25-2); its committed record, `metrics/quality_curve.json`, is a plot in dvc.yaml and a
table in the report. Regenerate it with `python -m ptychoreg.cli.quality_curve` (docs/quality-experiments.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from ptychoreg.core.config import QualitySettings
from ptychoreg.harness.quality import PHASES, score_quality, timing, train_phases
from ptychoreg.harness.runner import RecipeRun


def scaled_epochs(runs: list[RecipeRun], scale: float) -> list[int]:
    """Each phase's epochs scaled (at least one each)."""
    if scale <= 0:
        raise ValueError(f"budget scale must be positive, got {scale}")
    return [max(1, round(run.config.train.max_epochs * scale)) for run in runs]


def point(scale: float, metrics: dict, timing: dict) -> dict:
    """One point of the curve, from one scored run."""
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


def budget_points(data: str, params_path: str, settings: QualitySettings, scales: list[float], out: Path,
                  log: Callable[[str], None] = print) -> Iterator[dict]:
    """Run the quality recipes at each scale (ascending) into `out`/scale-<s>; yield each point as it lands.
    The floor is not applied: a small budget may score low, that is what the curve shows."""
    runs = [RecipeRun.of(params_path, name) for name in PHASES]
    for scale in sorted(set(scales)):
        epochs = scaled_epochs(runs, scale)
        log(f"budget x{scale:g}: {' + '.join(map(str, epochs))} epochs")
        where = out / f"scale-{scale:g}"
        phases = train_phases(data, where, runs, epochs)
        metrics, score = score_quality(data, [folder for folder, _ in phases], settings, where / "score", log=log,
                                       enforce=False)
        p = point(scale, metrics, timing([t for _, t in phases], metrics["phases"], score))
        log(f"budget x{scale:g}: {p['train_s']:.0f} s of training, amplitude SSIM {p['amplitude_ssim']:.3f}, "
            f"phase SSIM {p['phase_ssim']:.3f}")
        yield p


def curve_record(data: str, params_path: str, points: list[dict]) -> dict:
    """The committed record: the recipes it scaled, and the points so far."""
    recipes = {name: RecipeRun.of(params_path, name).config.model_dump() for name in PHASES}
    return {"data": data, "recipes": recipes, "points": points}
