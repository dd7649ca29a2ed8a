"""Quality on real work: train on the whole canonical dataset for a real budget, reconstruct, and require
the result to beat the flat-object baseline clearly.

In the pipeline this is three cached stages: `quality_pretrain` and `quality_refine` are plain ptycho-train
runs of the recipes of those names (single patterns, then groups under the overlap constraint from the
first model: from scratch the grouped objective sticks at a flat object; warm-started it improves on the
first phase, docs/quality-experiments.md), and `quality` scores the refined model (`score_quality`), so an
edit of the scoring reruns only the scoring. `runner.train_phases` runs both phases outside DVC (the
pinning cost, the tests).

The short regression on the fixture cannot learn past a nearly flat object in two epochs; this stage
is where a collapsed reconstruction (a flat object) or a degraded one fails the pipeline.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from ptychoreg.core.config import Config, QualitySettings
from ptychoreg.core.contract import load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.fileio import staged_outputs
from ptychoreg.core.inference import OUTPUT_FILES, infer_to
from ptychoreg.core.model.bundle import load_bundle
from ptychoreg.core.phases import own_peak_rss_mb
from ptychoreg.evaluation.quality import headline, quality_report


def score_quality(data_path: str, phases: list[Path], settings: QualitySettings, out: Path,
                  log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """Reconstruct every pattern of `data_path` with the last phase's model (its recipe's infer settings,
    from the bundle), score it and check it; return (metrics, this step's timing). With `settings.enforce`,
    a result failing its checks raises (the stage's gate) and its outputs are kept in `out`.failed;
    without, the checks are only recorded (a budget curve)."""
    started = time.perf_counter()
    model = phases[-1] / "model.pt"
    config = Config.model_validate(_bundle_config(model))
    data = load_npz(data_path)
    with staged_outputs(out, OUTPUT_FILES, inputs=[data_path, model], keep_failed=True) as staged:
        log(f"reconstructing {data_path} with {model}")
        summary = infer_to(staged.folder, model, data, config.infer, score=quality_report)
        metrics = _metrics(data_path, settings, [_phase(p) for p in phases], summary["quality"], summary["positions"])
        failed = [name for name, ok in metrics["checks"].items() if not ok]
        if failed and settings.enforce:
            q = metrics["quality"]
            figures = ", ".join(f"{part} SSIM {q[part]['ssim']:.3f} {'>=' if q[part]['ssim'] >= floor else '<'} {floor}"
                                for part, floor in settings.floors().items())
            raise PtychoError(data_path, f"reconstruction quality too low: {', '.join(failed)} ({figures}); "
                                         f"outputs kept in {out}.failed")
    return metrics, {"infer_s": time.perf_counter() - started, "infer_peak_rss_mb": own_peak_rss_mb()}


def _bundle_config(model: Path) -> dict:
    return load_bundle(model).config


def _phase(run: Path) -> dict:
    """One training phase: its recipe's network and training settings, and its loss history."""
    history = json.loads((run / "history.json").read_text())["epochs"]
    config = _bundle_config(run / "model.pt")
    train = config["train"]
    model = config["model"]
    return {"gridsize": model["gridsize"], "width": model["width"], "heads": model["heads"],
            "upsampling": model["upsampling"], "batch_size": train["batch_size"],
            "learning_rate": train["learning_rate"], "loss_function": train["loss"], "threads": train["threads"],
            "epochs": len(history),
            "loss": {"first": history[0]["train_loss"], "last": history[-1]["train_loss"], "val_last": history[-1]["val_loss"]}}


def timing(phase_timings: list[Path], phases: list[dict], score: dict) -> dict:
    """Wall seconds and peak memory: each training phase (its command's phases, from its --timings-out)
    and its epochs, then the scoring."""
    rows = []
    for path, phase in zip(phase_timings, phases):
        record = json.loads(Path(path).read_text())
        epochs = record["epoch_seconds"]
        rows.append({"gridsize": phase["gridsize"], "train_s": sum(record["phases"].values()),
                     "seconds_per_epoch": sum(epochs) / len(epochs), "peak_rss_mb": record["peak_rss_mb"]})
    return {
        "train_s": sum(p["train_s"] for p in rows),
        "phases": rows,
        **score,
        # The stage's memory budget: the largest peak of its processes (each process's own).
        "peak_rss_mb": max([p["peak_rss_mb"] for p in rows] + [score["infer_peak_rss_mb"]]),
    }


def _metrics(data: str, settings: QualitySettings, phases: list[dict], report: dict, patterns: int) -> dict:
    figures = headline(report)
    quality, baseline = figures["quality"], figures["baseline_flat"]
    checks = {f"{part}_ssim_above_floor": quality[part]["ssim"] >= floor for part, floor in settings.floors().items()}
    checks.update({f"{part}_ssim_beats_flat": quality[part]["ssim"] > baseline[part]["ssim"] for part in ("amplitude", "phase")})
    return {
        "settings": settings.model_dump(),
        "data": data,
        "phases": phases,
        "patterns": patterns,
        **figures,
        "checks": checks,
    }
