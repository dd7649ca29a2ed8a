"""What each training budget buys, as DVC experiments: the quality stage's two phases with every epoch count
scaled, one queued experiment per scale (`dvc exp run --queue`), their figures against the training seconds
read back with `dvc exp show`. DVC runs, caches and keeps each one (`dvc exp apply budget-x2` brings that
budget's model into the workspace); here are only the experiments' settings and the record's points.
`./tasks quality-curve` (docs/quality-experiments.md); the record, `metrics/quality_curve.json`, is a plot in
dvc.yaml and a table in the report.
"""

from __future__ import annotations

from ptychoreg.harness.runner import QUALITY_PHASES

PREFIX = "budget-x"


def experiment_name(scale: float) -> str:
    return f"{PREFIX}{scale:g}"


def scaled_epochs(full: list[int], scale: float) -> list[int]:
    """Each phase's epochs scaled (at least one each)."""
    if not scale > 0:
        raise ValueError(f"budget scale must be positive, got {scale}")
    return [max(1, round(epochs * scale)) for epochs in full]


def queue_args(full: list[int], scale: float) -> list[str]:
    """`dvc exp run --queue` arguments for one budget: both phases' epochs scaled, the quality checks recorded
    but not enforced (a small budget may score low: that is what the curve shows)."""
    sets = [f"recipes.{recipe}.train.max_epochs={epochs}" for recipe, epochs in zip(QUALITY_PHASES, scaled_epochs(full, scale))]
    sets.append("quality.enforce=false")
    return ["exp", "run", "--queue", "quality", "-n", experiment_name(scale), *(a for s in sets for a in ("-S", s))]


def points(shown: list[dict]) -> list[dict]:
    """One point per budget experiment in `dvc exp show --json` output, ascending by training seconds."""
    found = []
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            rev = experiment["revs"][0]
            name = rev.get("name") or ""
            if not name.startswith(PREFIX) or rev.get("error") or not rev.get("data", {}).get("metrics"):
                continue
            metrics, recipes = rev["data"]["metrics"], rev["data"]["params"]["params.yaml"]["data"]["recipes"]
            q = metrics["metrics/quality.json"]["data"]["quality"]
            found.append({
                "scale": float(name[len(PREFIX):]),
                "epochs": [recipes[recipe]["train"]["max_epochs"] for recipe in QUALITY_PHASES],  # as queued
                "train_s": round(metrics["metrics/quality_timing.json"]["data"]["train_s"], 1),
                "amplitude_ssim": round(q["amplitude"]["ssim"], 4),
                "phase_ssim": round(q["phase"]["ssim"], 4),
                "amplitude_correlation": round(q["amplitude"]["correlation"], 4),
                "phase_correlation": round(q["phase"]["correlation"], 4),
                "frc_mean": round(q["frc_mean"], 4),
            })
    return sorted(found, key=lambda p: p["scale"])
