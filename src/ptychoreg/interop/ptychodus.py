"""Ptychodus's NPZ product file (`ptychodus/plugins/npz_product_file.py`): a reconstruction's object,
probe, probe positions in metres, pixel geometry, name, comments and losses, under Ptychodus's keys.
"""

from __future__ import annotations

import json

import numpy as np

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


def export_run(run_dir, data_path: str, output, name: str | None = None, **units: float | None) -> dict:
    """Write a train + infer run folder (reconstruction.npz, model.pt, history.json) on `data_path` as a
    Ptychodus NPZ product at `output` (atomically); returns what was written, arrays summarised."""
    from pathlib import Path

    from ptychoreg.core.contract import load_npz
    from ptychoreg.core.errors import PtychoError
    from ptychoreg.core.fileio import write_npz
    from ptychoreg.core.model.bundle import load_bundle

    run_dir = Path(run_dir)
    for needed in ("reconstruction.npz", "model.pt", "history.json"):
        if not (run_dir / needed).is_file():
            raise PtychoError(run_dir / needed, "not found (export reads a folder written by ptycho-train and ptycho-infer)")
    data = load_npz(data_path)
    with np.load(run_dir / "reconstruction.npz", allow_pickle=False) as recon:
        obj, positions = recon["object"], recon["positions"]
    if positions.size and positions.max() >= data.n:
        raise PtychoError(data_path, f"has {data.n} positions, the reconstruction stitched index {positions.max()}: "
                                     "not the dataset it was made from", key="xcoords")
    bundle = load_bundle(run_dir / "model.pt")
    history = json.loads((run_dir / "history.json").read_text())
    given = {k: v for k, v in units.items() if v is not None}
    from_metadata = {k: data.metadata[k] for k in NOMINAL if isinstance(data.metadata.get(k), (int, float))}
    chosen = {**NOMINAL, **from_metadata, **given}
    nominal = sorted(k for k in NOMINAL if k not in from_metadata and k not in given)
    comments = (f"ptychoreg reconstruction of {data_path} by the model in {run_dir / 'model.pt'}; "
                f"positions are the stitched patch centres; losses are the training loss per epoch "
                f"({history.get('loss', 'poisson')}).")
    if nominal:
        comments += f" Nominal values (the data give none): {', '.join(f'{k}={NOMINAL[k]:g}' for k in nominal)}."
    nphotons = data.metadata.get("nphotons", 0.0)
    arrays = ptychodus_product(
        obj, bundle.probe.cpu().numpy(), data.xcoords[positions], data.ycoords[positions], positions,
        [epoch["train_loss"] for epoch in history["epochs"]], name or run_dir.name, comments,
        chosen["pixel_size_m"], chosen["detector_distance_m"], chosen["photon_energy_eV"],
        float(nphotons) if isinstance(nphotons, (int, float)) else 0.0)
    write_npz(output, arrays)
    return {"output": str(output), "positions": int(len(positions)), "object_shape": list(obj.shape),
            "nominal": nominal, "units": chosen}
