"""The golden record of the fixture regression: the numbers a train + infer run computes, as tables.

A run's numbers travel between machines to about 1e-5 relative (its stitched bytes do not), so the
regression compares them with committed golden values under measured tolerances
(`tests/test_golden.py`, pytest-regressions' `num_regression`). Each table is one CSV of golden values:

- `epochs`: train and validation loss per epoch;
- `figures`: the Poisson NLL of the measured patterns under the true patches `Y` (a number only the
  physics, the probe, the loss, the layout and the pairing of patterns with positions decide), and the
  reconstruction's quality figures against the truth;
- `blocks`: a coarse fingerprint of the stitched object: the mean amplitude and phase of 8 x 8 blocks
  over the scanned region (phase after removing the global phase offset against the truth).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ptychoreg.core.contract import PtychoData, load_npz
from ptychoreg.core.dataset import intensity_scale
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.fileio import write_text
from ptychoreg.core.model.physics import forward_amplitude, poisson_nll
from ptychoreg.evaluation.quality import headline, remove_global_phase
from ptychoreg.harness.runner import run_train_infer

BLOCKS = 8  # the fingerprint's grid: BLOCKS x BLOCKS block means over the scanned region's bounding box
TABLES = ("epochs", "figures", "blocks")


def true_patch_nll(data: PtychoData) -> float:
    """Mean Poisson NLL of the measured patterns when the network would predict the true patches exactly."""
    patches = torch.from_numpy(data.patches.astype(np.complex64))
    probe = torch.from_numpy(data.probe.astype(np.complex64))
    measured = torch.from_numpy(np.asarray(data.diffraction, dtype=np.float32))
    with torch.inference_mode():
        return float(poisson_nll(forward_amplitude(patches, probe), measured, intensity_scale(data).value))


def block_means(obj: np.ndarray, truth: np.ndarray, mask: np.ndarray, blocks: int = BLOCKS) -> dict[str, np.ndarray]:
    """Mean amplitude and phase of `blocks` x `blocks` blocks of the scanned region (masked pixels only)."""
    aligned, _ = remove_global_phase(obj.astype(np.complex128), truth, mask)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    row_parts = np.array_split(np.arange(rows[0], rows[-1] + 1), blocks)
    col_parts = np.array_split(np.arange(cols[0], cols[-1] + 1), blocks)
    amplitude, phase = [], []
    for r in row_parts:
        for c in col_parts:
            inside = mask[np.ix_(r, c)]
            values = aligned[np.ix_(r, c)][inside]
            amplitude.append(float(np.abs(values).mean()) if values.size else np.nan)
            phase.append(float(np.angle(values).mean()) if values.size else np.nan)
    return {"amplitude": np.array(amplitude), "phase": np.array(phase)}


def golden_record(run_dir: str | Path, data: PtychoData, infer_dir: str | Path | None = None) -> dict[str, dict[str, list[float]]]:
    """The record of one train + infer run on `data` (which must hold the truth): training outputs in
    `run_dir`, inference outputs in `infer_dir` (default: the same folder)."""
    run_dir = Path(run_dir)
    infer_dir = Path(infer_dir) if infer_dir else run_dir
    history = json.loads((run_dir / "history.json").read_text())["epochs"]
    report = headline(json.loads((infer_dir / "quality.json").read_text()))["quality"]
    with np.load(infer_dir / "reconstruction.npz", allow_pickle=False) as recon:
        obj, mask = recon["object"], recon["mask"]
    figures = {"nll_true_patches": true_patch_nll(data), "frc_mean": report["frc_mean"]}
    for part in ("amplitude", "phase"):
        figures.update({f"{part}_{k}": v for k, v in report[part].items()})
    blocks = block_means(obj, data.object, mask)
    return {
        "epochs": {
            "epoch": [float(h["epoch"]) for h in history],
            "train_loss": [h["train_loss"] for h in history],
            "val_loss": [np.nan if h["val_loss"] is None else h["val_loss"] for h in history],
        },
        "figures": {k: [float(v)] for k, v in sorted(figures.items())},
        "blocks": {f"{k}_mean": v.tolist() for k, v in blocks.items()},
    }


def write_record(path: str | Path, record: dict) -> None:
    # NaN (no validation split) is legal here: the record is read back by Python only.
    write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_record(path: str | Path) -> dict:
    record = json.loads(Path(path).read_text())
    missing = [t for t in TABLES if t not in record]
    if missing:
        raise PtychoError(path, f"golden record lacks table(s) {', '.join(missing)}")
    return record


# ---- measured spread: what the tolerances are chosen from ------------------------------------------------

# The same regression under every CPU code path this machine offers, and on 2 threads: each changes the
# kernels or the order of floating-point reductions, as another CPU family does. Golden values are the
# check for machines outside the pinned set (ARM, GPU, PTYCHOREG_NUMERICS=native), so every variant but
# the pinned one runs native: each library picks its kernels, capped only as the variant says.
# (None: the recipe's threads.)
_NATIVE = {"PTYCHOREG_NUMERICS": "native"}
SPREAD_VARIANTS = {
    "reference": (_NATIVE, None),
    "pinned (AVX2 set)": ({}, None),
    "2 threads": (_NATIVE, 2),
    "ATen default (no SIMD)": ({**_NATIVE, "ATEN_CPU_CAPABILITY": "default"}, None),
    "ATen AVX2": ({**_NATIVE, "ATEN_CPU_CAPABILITY": "avx2"}, None),
    "oneDNN <= AVX2": ({**_NATIVE, "ONEDNN_MAX_CPU_ISA": "AVX2"}, None),
    "MKL <= AVX2": ({**_NATIVE, "MKL_ENABLE_INSTRUCTIONS": "AVX2"}, None),
    "all <= SSE4": ({**_NATIVE, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                     "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}, None),
}


def deviations(records: dict[str, dict], reference: str = "reference") -> dict:
    """Per table and column: the worst absolute and relative deviation of any record from `reference`."""
    base = records[reference]
    out = {}
    for table, columns in base.items():
        for column, values in columns.items():
            b = np.asarray(values, dtype=float)
            diffs = [np.abs(np.asarray(r[table][column], dtype=float) - b) for r in records.values()]
            worst = np.nanmax(np.stack(diffs), axis=0)
            out.setdefault(table, {})[column] = {
                "abs": float(np.nanmax(worst)),
                "rel": float(np.nanmax(worst / np.maximum(np.abs(b), np.finfo(float).tiny))),
            }
    return out


def measure_spread(fixture: str, run, work: Path, log=print) -> tuple[dict, dict]:
    """Run the regression (`run`, a RecipeRun) once per SPREAD_VARIANTS entry; return (records, deviations)."""
    data = load_npz(fixture)
    records = {}
    for name, (env, threads) in SPREAD_VARIANTS.items():
        out = work / "".join(c if c.isalnum() else "_" for c in name)
        run_train_infer(fixture, out, run.with_threads(threads) if threads else run, env=env)
        records[name] = golden_record(out, data)
        log(f"{name}: train loss {records[name]['epochs']['train_loss'][-1]:.8g}")
    return records, deviations(records)


def spread_markdown(dev: dict, variants: list[str]) -> str:
    lines = [
        "# Golden values: measured spread",
        "",
        "Generated by the `golden_spread` stage. The fixture regression ran once under each of these CPU code",
        f"paths: {', '.join(variants)}. For every number of the golden record, the worst deviation from the",
        "reference run. The tolerances in `tests/test_golden.py` are about 10x these (`tests/test_golden.py`",
        "fails if one falls below 5x).",
        "",
        "| table | column | worst absolute | worst relative |",
        "| --- | --- | --- | --- |",
    ]
    for table, columns in dev.items():
        for column, d in columns.items():
            lines.append(f"| {table} | {column} | {d['abs']:.2e} | {d['rel']:.2e} |")
    return "\n".join(lines) + "\n"
