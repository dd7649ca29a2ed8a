"""The runtime gate: the regression of the working tree timed against a base revision on the same machine.

Committed seconds come from whatever machine recorded them, and CPUs differ by 2x, so absolute times
cannot gate anything. Like asv's `continuous`, the gate checks the base revision out with `git worktree`,
runs the same train + infer regression (the `regress` settings of the working tree) with each side's own
code, interleaved A B B A A B ... (harness.timing), and judges the median of the pairwise ratios head / base
for train, infer and total. Noise that moves both sides of a pair alike (another process, a CPU clock change)
cancels in the ratio. Each run's peak memory (the child's own peak RSS) is judged the same way: memory
repeats far more closely than time (the regress stage's spreads), so its limit is much tighter.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from ptychoreg.core.config import GateSettings
from ptychoreg.harness.dvc import git
from ptychoreg.harness.load import observe
from ptychoreg.harness.runner import RecipeRun
from ptychoreg.harness.timing import Side, interleaved, measure, ratios

PARTS = ("train", "infer", "total")
MEMORY_PARTS = ("train", "infer")
# A commit that makes the regression slower on purpose says so in its message, as a git trailer
# (`Runtime-Gate: accept <why>`); the gate then still measures and prints, but passes.
ACCEPT_TRAILER = "Runtime-Gate: accept"


@contextlib.contextmanager
def worktree(rev: str, repo: Path = Path(".")) -> Iterator[Path]:
    """A detached checkout of `rev` in a scratch folder, removed afterwards."""
    commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=repo)
    where = Path(tempfile.mkdtemp(prefix="ptychoreg-gate-")) / commit[:12]
    git("worktree", "add", "--detach", "--force", str(where), commit, cwd=repo)
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=repo, capture_output=True)
        shutil.rmtree(where.parent, ignore_errors=True)


def accepted_slowdown(repo: Path = Path(".")) -> str | None:
    """The reason HEAD's commit message gives for accepting a slowdown, or None."""
    message = git("log", "-1", "--format=%B", "HEAD", cwd=repo)
    for line in message.splitlines():
        if line.startswith(ACCEPT_TRAILER):
            return line[len(ACCEPT_TRAILER):].strip() or "no reason given"
    return None


def _judged(base: list[dict], head: list[dict], key: str, unit: str, limit: float) -> dict:
    values = ratios(base, head, (key,))[key]
    median = statistics.median(values)
    return {"median_ratio": median, "min_ratio": min(values), "max_ratio": max(values),
            f"base_median_{unit}": statistics.median(b[key] for b in base),
            f"head_median_{unit}": statistics.median(h[key] for h in head), "limit": limit, "ok": median <= limit}


def verdict(base: list[dict], head: list[dict], max_slowdown: float) -> dict:
    """Median pairwise ratio head / base of each part's seconds, its range, and whether it stays within the limit."""
    return {part: _judged(base, head, f"{part}_s", "s", 1 + max_slowdown) for part in PARTS}


def memory_verdict(base: list[dict], head: list[dict], max_growth: float) -> dict:
    """The same for each command's peak RSS."""
    return {f"{part} memory": _judged(base, head, f"{part}_rss_mb", "mb", 1 + max_growth) for part in MEMORY_PARTS}


def format_verdict(result: dict) -> str:
    rows = [("part", "base", "head", "head/base (median)", "range", "limit", "status")]
    for part, r in result.items():
        unit, value = ("mb", "{:.0f} MB") if "base_median_mb" in r else ("s", "{:.2f} s")
        rows.append((part, value.format(r[f"base_median_{unit}"]), value.format(r[f"head_median_{unit}"]),
                     f"{r['median_ratio']:.3f}", f"{r['min_ratio']:.3f}-{r['max_ratio']:.3f}",
                     f"<= {r['limit']:.2f}", "ok" if r["ok"] else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def compare(base: Side, head: Side, fixture: str, regression: RecipeRun, gate: GateSettings,
            log: Callable[[str], None] = print) -> dict:
    """`gate.pairs` interleaved runs of each side (harness.timing); the verdict per part, time then memory,
    of `head` against `base`. The gate's comparison, and the mutation stage's resource check."""
    times = interleaved([base, head], gate.pairs, fixture, regression, log)
    return {**verdict(times[base.name], times[head.name], gate.max_slowdown),
            **memory_verdict(times[base.name], times[head.name], gate.max_memory_growth)}


def run_gate(fixture: str, regression: RecipeRun, gate: GateSettings, head: Path = Path("."),
             log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """Time the working tree at `head` against `gate.base`; return the verdict per part (time, then memory)
    and the machine's other load over the measurement (harness.load)."""
    with worktree(gate.base, head) as base_root:
        log(f"runtime gate: {gate.base} ({base_root.name}) against the working tree, {gate.pairs} interleaved pairs")
        with observe() as load:
            result = compare(Side("base", base_root), Side("head", head.resolve()), str(Path(fixture).resolve()),
                             regression, gate, log)
    log(f"runtime gate: {load.describe()}")
    return result, load.record()


# ---- the gate's own error rates ---------------------------------------------------------------------

SLOWDOWN_SITE = """# Written by ptychoreg.harness.runtime_gate.slowdown_site: each command of the slowed side burns CPU
# for a fixed extra time at its end, as a real regression of that size would. Its source is untouched.
import atexit, os, sys, time

_EXTRA_SECONDS = {extra!r}


def _burn():
    command = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    until = time.perf_counter() + _EXTRA_SECONDS.get(command, 0.0)
    while time.perf_counter() < until:
        pass


atexit.register(_burn)
"""


def slowdown_site(folder: Path, extra_seconds: dict[str, float]) -> Path:
    """A folder whose sitecustomize.py makes the commands {module name ("train", "infer"): extra seconds}
    slower, for a Side's `site`: no source text is edited."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SLOWDOWN_SITE.format(extra=extra_seconds))
    return folder


def measure_error_rates(fixture: str, regression: RecipeRun, gate: GateSettings, decisions: int, slowdown: float,
                        repo: Path = Path("."), log: Callable[[str], None] = print) -> dict:
    """How often the gate fails unchanged code (false alarms) and passes a `slowdown` (misses).

    Three checkouts of HEAD: the base, the same code again, and the same code with `slowdown` injected.
    `decisions` x `gate.pairs` rounds time all three, rotating the order; each run of `gate.pairs`
    consecutive rounds is one gate decision for same-vs-base and one for slow-vs-base.
    """
    fixture = str(Path(fixture).resolve())
    with worktree("HEAD", repo) as base, worktree("HEAD", repo) as same, \
            tempfile.TemporaryDirectory(prefix="ptychoreg-gate-runs-") as scratch:
        # The slowdown is `slowdown` of the base's own times, measured here (median of 3 runs).
        runs = [measure(Side("base", base), fixture, regression, Path(scratch) / str(i)) for i in range(3)]
        site = slowdown_site(Path(scratch) / "slow-site", {part: slowdown * statistics.median(r[f"{part}_s"] for r in runs)
                                                           for part in ("train", "infer")})
        times = interleaved([Side("base", base), Side("same", same), Side("slow", same, site=site)],
                            decisions * gate.pairs, fixture, regression, log)
    blocks = []
    for d in range(decisions):
        cut = slice(d * gate.pairs, (d + 1) * gate.pairs)
        blocks.append({name: verdict(times["base"][cut], times[name][cut], gate.max_slowdown) for name in ("same", "slow")})
    all_null = ratios(times["base"], times["same"], tuple(f"{p}_s" for p in PARTS))
    return {
        "settings": {"pairs": gate.pairs, "max_slowdown": gate.max_slowdown, "decisions": decisions,
                     "injected_slowdown": slowdown, "threads": regression.config.train.threads},
        "false_alarms": sum(not all(b["same"][p]["ok"] for p in PARTS) for b in blocks),
        "detections": sum(not b["slow"]["total"]["ok"] for b in blocks),
        "null_median_ratios": {p: [b["same"][p]["median_ratio"] for b in blocks] for p in PARTS},
        "slow_median_ratios": {p: [b["slow"][p]["median_ratio"] for b in blocks] for p in PARTS},
        "null_pair_ratio_stdev": {p: statistics.stdev(v) if len(v) > 1 else 0.0 for p, v in
                                  zip(PARTS, all_null.values())},
        "seconds": {name: {p: statistics.median(t[f"{p}_s"] for t in runs) for p in PARTS} for name, runs in times.items()},
    }


def error_rates_markdown(result: dict) -> str:
    s = result["settings"]
    n = s["decisions"]
    lines = [
        "# Runtime gate: measured error rates",
        "",
        "Generated by `ptycho-runtime-gate --measure-error-rates` on one machine. Three checkouts of the same",
        f"commit (base, the same code again, the same code made {100 * s['injected_slowdown']:.0f} % slower: train and infer",
        f"each burn CPU at the end for that fraction of the base's own median time) timed in rotating order, {n * s['pairs']}",
        f"rounds; every {s['pairs']} consecutive rounds make one gate decision, as CI makes it (limit: median ratio",
        f"<= {1 + s['max_slowdown']:.2f} for train, infer and total). The limit sits between the two distributions",
        "below: above the worst unchanged decision, below the mildest slowed one.",
        "",
        f"- **False alarms on unchanged code: {result['false_alarms']} of {n}** decisions.",
        f"- **Detections of the {100 * s['injected_slowdown']:.0f} % slowdown: {result['detections']} of {n}** decisions (on the total).",
        "",
        "| part | unchanged: median ratio per decision | slowed: median ratio per decision | sd of one pair's ratio (unchanged) |",
        "| --- | --- | --- | --- |",
    ]
    for p in PARTS:
        null = ", ".join(f"{v:.3f}" for v in result["null_median_ratios"][p])
        slow = ", ".join(f"{v:.3f}" for v in result["slow_median_ratios"][p])
        lines.append(f"| {p} | {null} | {slow} | {result['null_pair_ratio_stdev'][p]:.3f} |")
    secs = result["seconds"]
    lines += ["", "Median seconds per side: " + "; ".join(
        f"{name} train {v['train']:.2f}, infer {v['infer']:.2f}, total {v['total']:.2f}" for name, v in secs.items()) + ".", ""]
    return "\n".join(lines)
