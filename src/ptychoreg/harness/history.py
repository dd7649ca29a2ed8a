"""Runtime history across commits, from `dvc metrics show -A --json`, rendered to PNG (no web chart library)."""

from __future__ import annotations

import subprocess

from ptychoreg.harness.dvc import dvc_json

REGRESSION_METRICS = "metrics/regression.json"
SERIES = ("train_s", "infer_s", "total_s")


def commit_order() -> list[str]:
    """Full hashes of the commits reachable from HEAD, oldest first."""
    out = subprocess.run(["git", "log", "--reverse", "--format=%H"], capture_output=True, text=True)
    return out.stdout.split() if out.returncode == 0 else []


def runtime_points(shown: dict, order: list[str]) -> list[tuple[str, dict]]:
    """(label, regression metrics) per commit that has them, oldest first; the workspace last."""
    points = []
    revs = [r for r in order if r in shown] + (["workspace"] if "workspace" in shown else [])
    for rev in revs:
        data = shown[rev].get("data", {}).get(REGRESSION_METRICS, {}).get("data")
        if data and all(isinstance(data.get(s), dict) and "median" in data[s] for s in SERIES):
            points.append((rev[:7] if rev != "workspace" else "workspace", data))
    return points


def render(points: list[tuple[str, dict]], path: str) -> None:
    from ptychoreg.plots import line_chart_png

    xs = list(range(1, len(points) + 1))
    series = {f"{s} median": (xs, [p[1][s]["median"] for p in points]) for s in SERIES}
    labels = ", ".join(f"{x}={label}" for x, (label, _) in zip(xs, points))
    line_chart_png(path, series, title="regression runtime per commit (seconds)",
                   xlabel=f"commit ({labels[:90]})", ylabel="seconds")


def show_all() -> dict:
    return dvc_json("metrics", "show", "-A")
