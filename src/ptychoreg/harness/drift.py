"""The drift gate: compare workspace metrics with a git revision and fail on regressions.

Rules (tolerances in params.yaml `drift:`): a runtime rising by more than `runtime_rise` (relative), a
peak memory rising by more than `memory_rise` (relative), a quality figure dropping by more than
`quality_drop` (absolute), or the fixture's sha256 changing while
no `fixture.*` parameter changed (the generator or its inputs drifted silently). Which figures count is
configured per metrics file.
Input is what `dvc metrics diff --json --all REV` and `dvc params diff --json REV` print.
"""

from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass

from ptychoreg.core.config import DriftSettings
from ptychoreg.harness.dvc import dvc_json
from ptychoreg.harness.load import from_record

FIXTURE_METRICS = "metrics/fixture.json"
NOT_COMPARABLE = ("not comparable", "", True)  # (change, limit, ok) of a figure missing on either side


@dataclass(frozen=True)
class Finding:
    rule: str  # "runtime", "memory", "quality" or "fixture"
    metric: str
    old: object
    new: object
    change: str
    limit: str
    ok: bool


def _pair(diff: dict, path: str, key: str):
    entry = diff.get(path, {}).get(key)
    if not entry:
        return None, None
    return entry.get("old"), entry.get("new")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _judged(rule: str, metrics_diff: dict, watched: dict[str, list[str]], judge) -> list[Finding]:
    """A finding per watched figure: `judge(old, new)` gives (change, limit, ok) where both are numbers."""
    findings = []
    for path, keys in watched.items():
        for key in keys:
            old, new = _pair(metrics_diff, path, key)
            change, limit, ok = judge(old, new) if _number(old) and _number(new) else NOT_COMPARABLE
            findings.append(Finding(rule, f"{Path(path).stem}:{key}", old, new, change, limit, ok))
    return findings


def _rise(limit: float):
    def judge(old, new):
        if old <= 0:
            return NOT_COMPARABLE
        rise = (new - old) / old
        return f"{100 * rise:+.1f} %", f"<= +{100 * limit:.0f} %", rise <= limit
    return judge


def busy_measurements(metrics_diff: dict, settings: DriftSettings) -> list[str]:
    """For each runtime metrics file measured on a busy machine (its `machine_load`, harness.load), on
    either side of the comparison: one line saying so."""
    notes = []
    for path in settings.runtime_metrics:
        for side in ("old", "new"):
            load = from_record({field: (metrics_diff.get(path, {}).get(f"machine_load.{field}") or {}).get(side)
                                for field in ("others_share", "steal_share", "cpus")})
            if load is not None and load.busy:
                notes.append(f"{path} ({'baseline' if side == 'old' else 'this run'}): {load.describe()}")
    return notes


def evaluate(metrics_diff: dict, params_diff: dict, settings: DriftSettings) -> list[Finding]:
    findings = _judged("runtime", metrics_diff, settings.runtime_metrics, _rise(settings.runtime_rise))
    findings += _judged("memory", metrics_diff, settings.memory_metrics, _rise(settings.memory_rise))
    findings += _judged("quality", metrics_diff, settings.quality_metrics, lambda old, new: (
        f"{new - old:+.4f}", f"drop <= {settings.quality_drop:g}", old - new <= settings.quality_drop))
    old, new = _pair(metrics_diff, FIXTURE_METRICS, "sha256")
    changed_params = sorted(k for k in params_diff.get("params.yaml", {}) if k.startswith("fixture."))
    if old != new and old is not None and new is not None:
        findings.append(Finding("fixture", "sha256", str(old)[:12], str(new)[:12], "changed",
                                "only with fixture.* params", bool(changed_params)))
    else:
        findings.append(Finding("fixture", "sha256", str(old)[:12], str(new)[:12], "same", "", True))
    return findings


def _fmt(value) -> str:
    return f"{value:.4g}" if _number(value) else str(value)


def format_table(findings: list[Finding], warn_only: set[str] = frozenset()) -> str:
    """The findings as an aligned text table; rules in `warn_only` show WARN instead of FAIL."""
    rows = [("rule", "metric", "old", "new", "change", "limit", "status")]
    for f in findings:
        status = "ok" if f.ok else ("WARN" if f.rule in warn_only else "FAIL")
        rows.append((f.rule, f.metric, _fmt(f.old), _fmt(f.new), f.change, f.limit, status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def collect(rev: str) -> tuple[dict, dict]:
    """What DVC says changed between `rev` and the workspace: (metrics diff, params diff)."""
    return dvc_json("metrics", "diff", "--all", rev), dvc_json("params", "diff", rev)
