"""The one way the harness times and measures the workflow: train + infer as fresh processes (runner.run_cli),
one record per run, sides interleaved, spreads and pairwise ratios.

A record is flat: `train_s`, `infer_s`, `total_s` (wall seconds), `train_cpu_s`, `infer_cpu_s` (user + system,
the command and its children), `train_rss_mb`, `infer_rss_mb` (each command's own peak). `summary` gives
the spread of each over repeats, under the same keys; `ratios` the pairwise head / base. The regress
stage, the sensitivity cells, the runtime gate, the pinning-cost study and the mutation stage's resource
check all measure with `measure` and report with these two.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ptychoreg.harness.runner import RecipeRun, RunRecord, run_train_infer


def spread(values: list[float]) -> dict:
    """Median with min, max and coefficient of variation (stdev / mean) of repeated measurements."""
    mean = statistics.fmean(values)
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "cv": statistics.stdev(values) / mean if len(values) > 1 and mean > 0 else 0.0,
        "n": len(values),
    }


def record(train: RunRecord, infer: RunRecord) -> dict[str, float]:
    return {"train_s": train.seconds, "infer_s": infer.seconds, "total_s": train.seconds + infer.seconds,
            "train_cpu_s": train.cpu_s, "infer_cpu_s": infer.cpu_s,
            "train_rss_mb": train.peak_rss_mb, "infer_rss_mb": infer.peak_rss_mb}


def summary(records: list[dict[str, float]]) -> dict[str, dict]:
    """The spread of each quantity over `records`, under the record's own keys."""
    return {key: spread([r[key] for r in records]) for key in records[0]}


def ratios(base: list[dict], head: list[dict], keys: tuple[str, ...]) -> dict[str, list[float]]:
    """head / base of each key, pair by pair."""
    return {key: [h[key] / b[key] for b, h in zip(base, head)] for key in keys}


@dataclass(frozen=True)
class Side:
    """What one side of a comparison runs: a source tree's code and params file (`root`; None: this
    process's code and the run's own params), with extra environment and flags."""
    name: str
    root: Path | None = None  # its src/ first on PYTHONPATH, its params.yaml read
    extra_env: tuple = ()  # (name, value) pairs added to the environment
    site: Path | None = None  # a folder with a sitecustomize.py the side's interpreters run first
    train_args: tuple = ()
    infer_args: tuple = ()

    def env(self) -> dict:
        path = [*([str(self.root / "src")] if self.root else []), *([str(self.site)] if self.site else [])]
        return {**({"PYTHONPATH": os.pathsep.join(path)} if path else {}), **dict(self.extra_env)}

    def run(self, run: RecipeRun) -> RecipeRun:
        """`run` (for its recipe and thread counts) with this side's own params file."""
        if self.root is None:
            return run
        params = self.root / "params.yaml"
        return RecipeRun(str(params) if params.is_file() else None, run.recipe, run.config, run.flags)


def measure(side: Side, data: str, run: RecipeRun, out: Path) -> dict[str, float]:
    """One train + infer of `side` into `out`: its record."""
    return record(*run_train_infer(data, out, side.run(run), side.train_args, side.infer_args, env=side.env(),
                                   timings=False))


def interleaved(sides: list[Side], rounds: int, data: str, run: RecipeRun,
                log: Callable[[str], None] = print) -> dict[str, list[dict]]:
    """One warm-up run per side, then `rounds` rounds measuring every side once, the order rotating each
    round (A B, B A, ... for two sides), so no side always runs first or last."""
    records = {side.name: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="ptychoreg-timing-") as scratch:
        for side in sides:
            measure(side, data, run, Path(scratch) / f"warmup-{side.name}")
        for i in range(rounds):
            order = sides[i % len(sides):] + sides[: i % len(sides)]
            for side in order:
                records[side.name].append(measure(side, data, run, Path(scratch) / f"{side.name}-{i}"))
            log(f"round {i + 1}/{rounds}: " + ", ".join(f"{s.name} {records[s.name][-1]['total_s']:.2f} s" for s in order))
    return records
