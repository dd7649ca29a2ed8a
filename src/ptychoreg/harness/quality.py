"""Quality on real work: train on the whole canonical dataset for a real budget, reconstruct, and
require the result to beat the flat-object baseline clearly (the `quality` stage).

Training runs in two phases (docs/quality-experiments.md): single patterns (gridsize 1), then groups
under the overlap constraint (`refine_gridsize`) starting from the first phase's model, which lands in
`<out>/pretrain/`. From scratch the grouped objective sticks at a flat object; warm-started it adds
~0.1 SSIM in 90 s.

The short regression on the fixture cannot learn past a nearly flat object in two epochs; this stage
is where a collapsed or degraded reconstruction (the peer's flat 0.2785 amplitude) fails the pipeline.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ptychoreg.config import QualitySettings
from ptychoreg.errors import PtychoError
from ptychoreg.harness.runner import params_args, read_timings, run_train, run_train_infer, staged_output_dir
from ptychoreg.quality import headline


def _phase_args(settings: QualitySettings, params_path: str | None, epochs: int, gridsize: int,
                learning_rate: float) -> list[str]:
    args = ["--max-epochs", str(epochs), "--width", str(settings.width), "--gridsize", str(gridsize),
            "--batch-size", str(settings.batch_size), "--learning-rate", str(learning_rate),
            "--lr-schedule", settings.lr_schedule, "--loss", settings.loss]
    return args + params_args(params_path)


def train_args(settings: QualitySettings, params_path: str | None) -> list[str]:
    """The train CLI's arguments for the first phase: the quality section overrides model/train."""
    return _phase_args(settings, params_path, settings.max_epochs, settings.gridsize, settings.learning_rate)


def refine_args(settings: QualitySettings, params_path: str | None, init_model: Path) -> list[str]:
    """The second phase: gridsize-g groups under the overlap constraint, from the first phase's model."""
    return _phase_args(settings, params_path, settings.refine_epochs, settings.refine_gridsize,
                       settings.refine_learning_rate) + ["--init-model", str(init_model)]


def run_quality(data: str, settings: QualitySettings, out: Path, params_path: str | None = None,
                log: Callable[[str], None] = print, enforce: bool = True) -> tuple[dict, dict]:
    """Train, reconstruct and score; return (metrics, timing). With `enforce`, a result failing its checks
    raises (the stage's gate) and its outputs are kept in `out`.failed; without, the checks are only
    recorded (a budget curve). `out` receives only what is the same bytes on every pinned machine; the
    children's logs (echoed as they run) and timings stay in a scratch folder."""
    with staged_output_dir(out) as work, tempfile.TemporaryDirectory(prefix="ptycho-quality-logs-") as scratch:
        logs = Path(scratch)
        log(f"training on {data}: {settings.max_epochs} epochs, width {settings.width}, gridsize {settings.gridsize}"
            + (f", then {settings.refine_epochs} epochs at gridsize {settings.refine_gridsize}" if settings.refine_epochs else "")
            + f", {settings.threads} thread(s)")
        runs, args = [], train_args(settings, params_path)
        if settings.refine_epochs:
            first = work / "pretrain"
            runs.append((settings.gridsize, first, run_train(data, first, args, settings.threads, echo=True, logs=logs / "pretrain")))
            args = refine_args(settings, params_path, first / "model.pt")
        train, infer = run_train_infer(data, work, args, params_args(params_path), settings.threads, echo=True, logs=logs)
        runs.append((settings.refine_gridsize if settings.refine_epochs else settings.gridsize, work, train))
        report = json.loads((work / "quality.json").read_text())
        patterns = json.loads((work / "summary.json").read_text())["positions"]
        metrics = _metrics(data, settings, [_phase(gridsize, run) for gridsize, run, _ in runs], report, patterns)
        timing = _timing(runs, infer)
        failed = [name for name, ok in metrics["checks"].items() if not ok]
        if failed and enforce:
            q = metrics["quality"]
            raise PtychoError(data, f"reconstruction quality too low: {', '.join(failed)} "
                                    f"(amplitude SSIM {q['amplitude']['ssim']:.3f}, phase SSIM {q['phase']['ssim']:.3f}, "
                                    f"floor {settings.min_ssim}); outputs kept in {out}.failed")
    return metrics, timing


def _phase(gridsize: int, run: Path) -> dict:
    """One training phase: its loss history."""
    history = json.loads((run / "history.json").read_text())["epochs"]
    return {"gridsize": gridsize, "epochs": len(history),
            "loss": {"first": history[0]["train_loss"], "last": history[-1]["train_loss"], "val_last": history[-1]["val_loss"]}}


def _timing(runs: list, infer) -> dict:
    """Wall seconds: each training process (start-up included) and its epochs, then inference."""
    phases = []
    for gridsize, _, record in runs:
        epochs = read_timings(record)["epoch_seconds"]
        phases.append({"gridsize": gridsize, "train_s": record.seconds, "seconds_per_epoch": sum(epochs) / len(epochs),
                       "peak_rss_mb": record.peak_rss_mb})
    return {
        "train_s": sum(p["train_s"] for p in phases),  # every training process, start-up included
        "phases": phases,
        "infer_s": infer.seconds,  # the ptycho-infer process, start-up included, for every pattern
        "infer_peak_rss_mb": infer.peak_rss_mb,
        # The stage's memory budget: the largest peak of its processes (each process's own, os.wait4).
        "peak_rss_mb": max([p["peak_rss_mb"] for p in phases] + [infer.peak_rss_mb]),
    }


def _metrics(data: str, settings: QualitySettings, phases: list[dict], report: dict, patterns: int) -> dict:
    figures = headline(report)
    quality, baseline = figures["quality"], figures["baseline_flat"]
    checks = {f"{part}_ssim_above_floor": quality[part]["ssim"] >= settings.min_ssim for part in ("amplitude", "phase")}
    checks.update({f"{part}_ssim_beats_flat": quality[part]["ssim"] > baseline[part]["ssim"] for part in ("amplitude", "phase")})
    return {
        "settings": asdict(settings),
        "data": data,
        "phases": phases,
        "patterns": patterns,
        **figures,
        "checks": checks,
    }
