"""PtychoPINN's dataset vocabulary (`ptycho/raw_data.py`, `ptycho/metadata.py`).

Its loader reads `diff3d` (not `diffraction`), the coordinates, `probeGuess`, and optionally
`xcoords_start`, `ycoords_start`, `objectGuess` and `scan_index`; its physics comes from a JSON string
under `_metadata` (`physics_parameters.nphotons`), without which it assumes 1e9 photons.
"""

from __future__ import annotations

import json

import numpy as np

PTYCHOPINN_METADATA_KEY = "_metadata"
PTYCHOPINN_SCHEMA_VERSION = "1.0.0"


def ptychopinn_metadata(nphotons: float, size: int, transformations: list[str]) -> np.ndarray:
    """PtychoPINN's `_metadata`: a 0-d unicode JSON string (its MetadataManager's schema), without the
    clock, host or version stamps it would add, so the file's bytes stay reproducible. No gridsize: the
    data serve any, and PtychoPINN warns when a stored gridsize differs from the one it trains with."""
    record = {
        "schema_version": PTYCHOPINN_SCHEMA_VERSION,
        "creation_info": {"script": "ptychoreg fixture generator"},
        "physics_parameters": {"nphotons": float(nphotons), "N": int(size)},
        "data_transformations": [{"tool": "ptychoreg", "operation": t} for t in transformations],
    }
    return np.array(json.dumps(record, indent=2, sort_keys=True))


def ptychopinn_nphotons(value: np.ndarray) -> float | None:
    """The photon count a `_metadata` string holds, or None (PtychoPINN's MetadataManager.get_nphotons)."""
    record = json.loads(str(np.asarray(value).item()))
    physics = record.get("physics_parameters") if isinstance(record, dict) else None
    nphotons = physics.get("nphotons") if isinstance(physics, dict) else None
    return float(nphotons) if isinstance(nphotons, (int, float)) and not isinstance(nphotons, bool) else None
