"""What the pinned numerical environment costs on this machine: the same code timed pinned and native
(each library's own kernels), interleaved, as the runtime gate does for two revisions.

- the regression (train + infer on the fixture, the `regression` recipe), `pairs` rounds;
- the quality recipe's epochs: its first phase (1087 patterns, width 16, 2 threads) for a few epochs and
  its gridsize-2 refinement for one, the per-epoch seconds each run reports.

`python -m ptychoreg.harness.pinning_cost [--pairs 5] [--out metrics/pinning_cost.json]`. On a CPU without
AVX-512 both sides run the same kernels and the ratios are noise; with AVX-512 they are the price of
bytes that match every other machine.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
from pathlib import Path

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, entry_points
from ptychoreg.harness.runner import QUALITY_PHASES, RecipeRun, project_data, train_phases
from ptychoreg.harness.runtime_gate import PARTS
from ptychoreg.harness.timing import Side, interleaved, ratios, spread

NATIVE = (("PTYCHOREG_NUMERICS", "native"),)


def regression_cost(root: Path, fixture: str, regression: RecipeRun, pairs: int) -> dict:
    times = interleaved([Side("native", root, NATIVE), Side("pinned", root)], pairs, fixture, regression)
    pinned_over_native = ratios(times["native"], times["pinned"], tuple(f"{part}_s" for part in PARTS))
    return {part: {"native_s": spread([t[f"{part}_s"] for t in times["native"]]),
                   "pinned_s": spread([t[f"{part}_s"] for t in times["pinned"]]),
                   "ratio": spread(pinned_over_native[f"{part}_s"])} for part in PARTS}


def quality_epoch_cost(data: str, params: str, pairs: int, epochs: int, work: Path) -> dict:
    """Seconds per epoch of the quality recipes' two phases, pinned against native, interleaved."""
    runs = [RecipeRun.of(params, name) for name in QUALITY_PHASES]
    per_epoch = {"pretrain": {"native": [], "pinned": []}, "refine": {"native": [], "pinned": []}}
    for i in range(pairs):
        for side, env in (("native", dict(NATIVE)), ("pinned", {})) if i % 2 == 0 else (("pinned", {}), ("native", dict(NATIVE))):
            (_, first), (_, refine) = train_phases(data, work / f"{side}{i}", runs, [epochs, 1], env=env)
            per_epoch["pretrain"][side].append(statistics.median(json.loads(first.read_text())["epoch_seconds"]))
            per_epoch["refine"][side].append(json.loads(refine.read_text())["epoch_seconds"][0])
            print(f"pair {i + 1}/{pairs} {side}: {per_epoch['pretrain'][side][-1]:.2f} s per epoch, refine "
                  f"{per_epoch['refine'][side][-1]:.2f} s", flush=True)
    return {phase: {"native_s": spread(s["native"]), "pinned_s": spread(s["pinned"]),
                    "ratio": spread([p / n for n, p in zip(s["native"], s["pinned"])])} for phase, s in per_epoch.items()}


def _main(argv: list[str] | None) -> int:
    p = ArgumentParser(prog="python -m ptychoreg.harness.pinning_cost", description=__doc__)
    p.add_argument("--params", default=PROJECT_PARAMS)
    p.add_argument("--fixture", help="default: the params file's fixture.output")
    p.add_argument("--data", help="default: the params file's data.canonical")
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--quality-pairs", type=int, default=2)
    p.add_argument("--quality-epochs", type=int, default=3)
    p.add_argument("--out", default="metrics/pinning_cost.json")
    args = p.parse_args(argv)
    # numpy only now: this module is an entry, and numpy loads after `entry_points` has set the process up.
    from numpy._core._multiarray_umath import __cpu_features__ as cpu_features

    from ptychoreg.core.fileio import write_json

    fixture, canonical = project_data(args.params)
    regression = RecipeRun.of(args.params, "regression")
    with tempfile.TemporaryDirectory(prefix="ptycho-pinning-") as work:
        result = {
            "machine": {"cpu": platform.processor() or platform.machine(), "avx512f": bool(cpu_features.get("AVX512F"))},
            "regression": regression_cost(Path(".").resolve(), str(Path(args.fixture or fixture).resolve()), regression, args.pairs),
            "quality_epochs": quality_epoch_cost(args.data or canonical, args.params, args.quality_pairs, args.quality_epochs, Path(work)),
        }
    write_json(args.out, result)
    for name, parts in (("regression", result["regression"]), ("quality epoch", result["quality_epochs"])):
        for part, r in parts.items():
            print(f"{name} {part}: native {r['native_s']['median']:.2f} s, pinned {r['pinned_s']['median']:.2f} s, "
                  f"x{r['ratio']['median']:.3f} (x{r['ratio']['min']:.3f}-{r['ratio']['max']:.3f})")
    return 0


main, cli = entry_points("python -m ptychoreg.harness.pinning_cost", _main)


if __name__ == "__main__":
    cli()
