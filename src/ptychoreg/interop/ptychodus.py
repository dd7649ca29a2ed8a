"""Ptychodus's NPZ product file (`ptychodus/plugins/npz_product_file.py`): a reconstruction's object,
probe, probe positions in metres, pixel geometry, name, comments and losses, under Ptychodus's keys.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ptychoreg.core.contract import load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.fileio import refuse_overlap, write_npz
from ptychoreg.core.model.bundle import load_bundle

# Our data carry no physical units (positions are object pixels), Ptychodus wants metres: these nominal
# values are used unless the dataset's metadata or the caller gives real ones, and the product's comments
# say which were used.
NOMINAL = {"pixel_size_m": 1e-8, "detector_distance_m": 1.0, "photon_energy_eV": 10000.0}


def ptychodus_product(obj: np.ndarray, probe: np.ndarray, xcoords: np.ndarray, ycoords: np.ndarray,
                      positions: np.ndarray, losses: list[float], name: str, comments: str,
                      pixel_size_m: float, detector_distance_m: float, photon_energy_eV: float,
                      probe_photon_count: float) -> dict[str, np.ndarray]:
    """The arrays of a Ptychodus NPZ product file (keys as its NPZProductFileIO reads them).

    Positions are the centres of the stitched patches, converted from object pixels to metres relative to
    the object's centre, which is where Ptychodus puts its origin (object centre at (0, 0) m).
    """
    rows, cols = obj.shape
    x_m = (np.asarray(xcoords, dtype=np.float64) - cols / 2) * pixel_size_m
    y_m = (np.asarray(ycoords, dtype=np.float64) - rows / 2) * pixel_size_m
    return {
        "name": np.array(name),
        "comments": np.array(comments),
        "detector_object_distance_m": np.array(float(detector_distance_m)),
        "photon_energy_eV": np.array(float(photon_energy_eV)),
        "probe_photon_count": np.array(float(probe_photon_count)),
        "far_field": np.array(True),
        "probe_position_indexes": np.asarray(positions, dtype=np.int64),
        "probe_position_x_m": x_m,
        "probe_position_y_m": y_m,
        "probe": np.asarray(probe, dtype=np.complex64),
        "probe_pixel_width_m": np.array(float(pixel_size_m)),
        "probe_pixel_height_m": np.array(float(pixel_size_m)),
        "object": np.asarray(obj, dtype=np.complex64),
        "object_center_x_m": np.array(0.0),
        "object_center_y_m": np.array(0.0),
        "object_pixel_width_m": np.array(float(pixel_size_m)),
        "object_pixel_height_m": np.array(float(pixel_size_m)),
        "loss_epochs": np.arange(len(losses), dtype=np.int64),
        "loss_values": np.asarray(losses, dtype=np.float64),
    }


def _training_losses(path) -> tuple[list[float], str]:
    """The training loss per epoch and the loss's name from a run's history.json, or one PtychoError."""
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PtychoError(path, f"not a readable training history ({str(exc)[:80]})") from None
    epochs = history.get("epochs") if isinstance(history, dict) else None
    if not isinstance(epochs, list) or not epochs:
        raise PtychoError(path, "expected a non-empty list of epochs", key="epochs")
    losses = [e.get("train_loss") if isinstance(e, dict) else None for e in epochs]
    bad = [i for i, v in enumerate(losses) if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        raise PtychoError(path, f"epoch {bad[0] + 1} has no finite train_loss", key="epochs")
    loss = history.get("loss", "poisson")
    return [float(v) for v in losses], loss if isinstance(loss, str) else "poisson"


def export_run(run_dir, data_path: str, output, name: str | None = None, **units: float | None) -> dict:
    """Write a train + infer run folder (reconstruction.npz, model.pt, history.json) on `data_path` as a
    Ptychodus NPZ product at `output` (atomically); returns what was written, arrays summarised."""
    run_dir = Path(run_dir)
    for needed in ("reconstruction.npz", "model.pt", "history.json"):
        if not (run_dir / needed).is_file():
            raise PtychoError(run_dir / needed, "not found (export reads a folder written by ptycho-train and ptycho-infer)")
    refuse_overlap([output], [data_path, *(run_dir / needed for needed in ("reconstruction.npz", "model.pt", "history.json"))])
    data = load_npz(data_path)
    recon_path = run_dir / "reconstruction.npz"
    try:
        with np.load(recon_path, allow_pickle=False) as recon:
            obj, positions = recon["object"], recon["positions"]
    except KeyError as exc:
        raise PtychoError(recon_path, "required key missing", key=str(exc).strip("'\"")[:40]) from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise PtychoError(recon_path, f"not a readable reconstruction ({str(exc)[:120]})") from None
    if obj.ndim != 2 or obj.dtype.kind != "c":
        raise PtychoError(recon_path, f"expected a 2-d complex object, got {obj.dtype} shape {obj.shape[:4]}", key="object")
    if positions.ndim != 1 or positions.dtype.kind not in "iu" or (positions.size and positions.min() < 0):
        raise PtychoError(recon_path, "expected 1-d non-negative integer indices", key="positions")
    if positions.size and positions.max() >= data.n:
        raise PtychoError(data_path, f"has {data.n} positions, the reconstruction stitched index {positions.max()}: "
                                     "not the dataset it was made from", key="xcoords")
    bundle = load_bundle(run_dir / "model.pt")
    losses, loss_name = _training_losses(run_dir / "history.json")
    given = {k: v for k, v in units.items() if v is not None}
    from_metadata = {k: data.metadata[k] for k in NOMINAL if isinstance(data.metadata.get(k), (int, float))}
    chosen = {**NOMINAL, **from_metadata, **given}
    for key, value in chosen.items():
        if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            where, name = (None, f"--{key.replace('_', '-').lower()}") if key in given else (data_path, f"metadata {key}")
            raise PtychoError(where, f"{name} must be a finite number > 0, got {value!r}")
    nominal = sorted(k for k in NOMINAL if k not in from_metadata and k not in given)
    comments = (f"ptychoreg reconstruction of {data_path} by the model in {run_dir / 'model.pt'}; "
                f"positions are the stitched patch centres; losses are the training loss per epoch "
                f"({loss_name}).")
    if nominal:
        comments += f" Nominal values (the data give none): {', '.join(f'{k}={NOMINAL[k]:g}' for k in nominal)}."
    nphotons = data.metadata.get("nphotons", 0.0)
    arrays = ptychodus_product(
        obj, bundle.probe.cpu().numpy(), data.xcoords[positions], data.ycoords[positions], positions,
        losses, name or run_dir.name, comments,
        chosen["pixel_size_m"], chosen["detector_distance_m"], chosen["photon_energy_eV"],
        float(nphotons) if isinstance(nphotons, (int, float)) else 0.0)
    write_npz(output, arrays)
    return {"output": str(output), "positions": int(len(positions)), "object_shape": list(obj.shape),
            "nominal": nominal, "units": chosen}
