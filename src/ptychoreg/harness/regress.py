"""The train-to-infer regression on the fixture.

Runs the real `train` and `infer` CLIs several times on the fixture, times them beside a fixed
calibration workload, and checks that the result is real: determinism across repeats (on this machine),
a falling loss, the stitcher's orientation, a reconstruction in the object frame with finite values,
quality figures in their valid ranges, and (given the `infer_fixture` stage's output) that the timed runs
reproduce that staged run byte for byte on this machine. Any failed check fails the stage and leaves the
previous metrics in place. The numbers themselves are checked against golden values by `check_fixture`
(tests/test_golden.py): numbers travel between machines, stitched bytes do not.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np

from ptychoreg.core.config import RegressSettings
from ptychoreg.core.contract import load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.fixture import verify_fixture
from ptychoreg.core.geometry import stitch
from ptychoreg.harness.load import observe
from ptychoreg.harness.runner import RecipeRun, breakdown, dir_bytes, run_calibration, run_train_infer, time_python
from ptychoreg.harness.timing import record, spread, summary
from ptychoreg.evaluation.quality import headline

ORIENTATION_TOLERANCE = 1e-4  # max |stitch(Y) - objectGuess| over the scanned region (complex64 rounding)


def orientation_error(fixture_path: str | Path) -> float:
    """Stitch the fixture's ground-truth patches Y; return the worst deviation from objectGuess."""
    data = load_npz(fixture_path)
    if data.patches is None or data.object is None:
        raise PtychoError(fixture_path, "fixture lacks Y or objectGuess for the orientation check", key="Y")
    size = data.frame_shape[0]
    stitched = stitch(data.patches, data.ycoords, data.xcoords, data.object.shape, trusted=size // 2)
    return float(np.abs(stitched.object - data.object)[stitched.mask].max())


def read_run(run_dir: Path, object_shape: tuple) -> dict:
    """Read one run's outputs and check they are real; return the figures."""
    history = json.loads((run_dir / "history.json").read_text())["epochs"]
    quality = json.loads((run_dir / "quality.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    with np.load(run_dir / "reconstruction.npz", allow_pickle=False) as recon:
        obj, mask = recon["object"], recon["mask"]
    return {
        "sha256": summary["stitched_sha256"],
        "first_loss": history[0]["train_loss"],
        "last_loss": history[-1]["train_loss"],
        "quality": quality,
        "frame_ok": obj.shape == tuple(object_shape) and bool(mask.any()),
        "finite_ok": bool(np.isfinite(obj).all()),
        "bundle_bytes": (run_dir / "model.pt").stat().st_size,
        "output_bytes": dir_bytes(run_dir),
    }


def _quality_ok(quality: dict) -> bool:
    figures = [quality[part][k] for part in ("amplitude", "phase") for k in ("correlation", "ssim")]
    return all(np.isfinite(v) and -1 <= v <= 1 for v in figures + [quality["frc"]["mean"]])


def run_regression(
    fixture: str,
    expected_sha256: str,
    settings: RegressSettings,
    run: RecipeRun,
    staged_run: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict, list[dict]]:
    """Time `settings.repeats` train + infer runs of `run` (the regression recipe); return the metrics and the
    seconds per repeat."""
    verify_fixture(fixture, expected_sha256, "metrics/fixture.json")
    data = load_npz(fixture)
    orientation = orientation_error(fixture)
    staged_sha = json.loads((Path(staged_run) / "summary.json").read_text())["stitched_sha256"] if staged_run else None

    runs, records, calibrations, parts, torch_import = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="ptycho-regress-") as work, observe() as load:
        for repeat in range(settings.repeats):
            run_dir = Path(work) / f"repeat{repeat}"
            calibrations.append(run_calibration(run_dir / "calibration.log"))
            train, infer = run_train_infer(fixture, run_dir, run)  # with timings files, for the breakdown
            records.append(record(train, infer))
            runs.append(read_run(run_dir, data.object.shape))
            interpreter = time_python("pass")
            torch_import.append(time_python("import torch") - interpreter)
            parts.append({"train": breakdown(train, interpreter), "infer": breakdown(infer, interpreter)})
            log(f"repeat {repeat + 1}/{settings.repeats}: train {train.seconds:.2f} s, infer {infer.seconds:.2f} s "
                f"(calibration {calibrations[-1].seconds:.2f} s), peak RSS {max(train.peak_rss_mb, infer.peak_rss_mb):.0f} MB, "
                f"sha256 {runs[-1]['sha256'][:12]}")
    checks = {
        "deterministic": len({r["sha256"] for r in runs}) == 1,
        "loss_decreased": all(r["last_loss"] < r["first_loss"] for r in runs) if run.config.train.max_epochs > 1 else True,
        "orientation": orientation < ORIENTATION_TOLERANCE,
        "object_frame": all(r["frame_ok"] for r in runs),
        "finite": all(r["finite_ok"] for r in runs),
        "quality_in_range": all(_quality_ok(r["quality"]) for r in runs),
    }
    if staged_sha is not None:
        checks["reproduces_staged_run"] = runs[0]["sha256"] == staged_sha
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise PtychoError(fixture, f"regression failed: {', '.join(failed)}")
    last = runs[-1]
    calibration_s = [c.seconds for c in calibrations]
    # Each repeat divided by the calibration run timed just before it, on the same machine.
    normalised = {name: spread([r[f"{name}_s"] / c for r, c in zip(records, calibration_s)])
                  for name in ("train", "infer", "total")}

    per_repeat = [{"repeat": n + 1, **{k: r[k] for k in ("train_s", "infer_s", "total_s")}, "calibration_s": c}
                  for n, (r, c) in enumerate(zip(records, calibration_s))]
    return {
        "settings": {**settings.model_dump(), "recipe": run.recipe, **run.config.model_dump()},
        "environment": {"torch": version("torch"), "python": platform.python_version(),
                        "machine": platform.machine(), "threads": run.config.train.threads},
        "fixture_sha256": expected_sha256,
        # Wall and CPU seconds and each command's own peak memory (os.wait4), with their spread over the
        # repeats (harness.timing): the memory gate's limit (runtime_gate.max_memory_growth) is set from it.
        **summary(records),
        "calibration_s": spread(calibration_s),
        # Regression seconds in units of the calibration workload: comparable between machines.
        "normalised": normalised,
        # Where the seconds go (medians over the repeats); `torch_import_s` is `import torch` alone, which the
        # imports phase of each command includes.
        "breakdown": {cli: {part: statistics.median(p[cli][part] for p in parts) for part in parts[0][cli]}
                      for cli in ("train", "infer")},
        "torch_import_s": statistics.median(torch_import),
        "distinct_outputs": len({r["sha256"] for r in runs}),
        "loss": {"first": last["first_loss"], "last": last["last_loss"]},
        **headline(last["quality"]),
        "orientation_max_error": orientation,
        "artifacts": {"bundle_bytes": last["bundle_bytes"], "output_bytes": last["output_bytes"]},
        "checks": checks,
        # Whether other processes or the hypervisor took CPU while these seconds were measured (the drift
        # gate says so beside a runtime rise).
        "machine_load": load.record(),
    }, per_repeat
