"""The data contract: the only place that loads, validates and orients ptychography .npz files.

Contract: docs/design/data-contract.md. Everything else in the project reads data through
`load_npz` and gets canonical (N, H, W) arrays; nobody re-implements the layout rule.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptychoreg.core.errors import PtychoError
from ptychoreg.core.limits import check_memory, gib
from ptychoreg.core.ptychopinn import PTYCHOPINN_METADATA_KEY, ptychopinn_nphotons

LAYOUTS = ("NHW", "HWN")

REQUIRED_KEYS = ("diffraction", "probeGuess", "xcoords", "ycoords")
KNOWN_KEYS = frozenset(
    REQUIRED_KEYS
    # diff3d, scan_index and _metadata are PtychoPINN's names (ptychoreg.interop); read and checked here.
    + ("diff3d", "objectGuess", "xcoords_start", "ycoords_start", "Y", "metadata", "scan_index", "_metadata")
)

# Layout evidence for the ambiguous N == H == W case: the fraction of the stack's energy that lies in
# the central half of an axis. Far-field patterns share a bright centre, so a detector axis holds nearly
# all of its energy there (0.9996 on the canonical data); the scan axis is flat (about 0.5).
DETECTOR_MIN_CENTRAL_FRACTION = 0.75
SCAN_MAX_CENTRAL_FRACTION = 0.65


@dataclass(frozen=True)
class LayoutDecision:
    layout: str  # "NHW" or "HWN": how the file stored the stack
    evidence: str  # what decided it, in words


@dataclass(frozen=True)
class PtychoData:
    """A validated dataset in canonical orientation. Arrays keep the dtypes the file stored."""

    path: str
    diffraction: np.ndarray  # (N, H, W) amplitude, float32 or float64
    probe: np.ndarray  # (H, W) complex
    xcoords: np.ndarray  # (N,) patch centres, object pixels (column)
    ycoords: np.ndarray  # (N,) patch centres, object pixels (row)
    xcoords_start: np.ndarray
    ycoords_start: np.ndarray
    layout: LayoutDecision
    object: np.ndarray | None = None  # (M1, M2) complex ground truth, when present
    patches: np.ndarray | None = None  # `Y`: (N, H, W) complex ground-truth patches, when present
    scan_index: np.ndarray | None = None  # (N,) integers: which scan each pattern belongs to (PtychoPINN)
    metadata: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)  # unknown keys, carried untouched

    @property
    def n(self) -> int:
        return self.diffraction.shape[0]

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.diffraction.shape[1:]


def _fail(path, key, problem) -> PtychoError:
    return PtychoError(path, problem, key=key)


def _read_members(path: str) -> dict[str, np.ndarray]:
    """Read every array of the archive eagerly, so truncation or pickle anywhere is caught here."""
    p = Path(path)
    if not p.exists():
        raise _fail(path, None, "file not found")
    if p.is_dir():
        raise _fail(path, None, "is a directory, expected an .npz file")
    if p.stat().st_size == 0:
        raise _fail(path, None, "empty file, expected an .npz archive")
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(b"\x80"):
        raise _fail(path, None, "is a Python pickle; refused (loading it could run code)")
    if magic.startswith(b"\x93NUMPY"):
        raise _fail(path, None, "holds a single .npy array, expected an .npz archive of named arrays")
    if not magic.startswith(b"PK"):
        raise _fail(path, None, "not a readable .npz archive (not a zip file)")
    try:
        _check_declared_sizes(path)
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
        raise _fail(path, None, f"not a readable .npz archive ({str(exc)[:160]})") from None
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                if "pickle" in str(exc) or "Object arrays" in str(exc):
                    raise _fail(path, key, "holds a pickled object array; refused (allow_pickle=False)") from None
                raise _fail(path, key, f"unreadable array ({str(exc)[:160]})") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
                raise _fail(path, key, f"truncated or corrupt array ({str(exc)[:160]})") from None
    return arrays


def _check_declared_sizes(path: str) -> None:
    """Each array's declared shape against the bytes its member holds, and all of them against the memory
    limit, from the headers alone: a damaged or forged header is refused before anything is allocated."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            with archive.open(info) as member:
                try:
                    version = np.lib.format.read_magic(member)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(member)
                except (ValueError, SyntaxError, TypeError) as exc:
                    raise _fail(path, key, f"unreadable array header ({str(exc)[:120]})") from None
            if dtype.hasobject:
                continue  # refused when read (pickle)
            declared = math.prod(shape) * dtype.itemsize
            if declared > info.file_size:
                raise _fail(path, key, f"declares shape {shape[:8]} of {dtype} ({gib(declared)}) but holds "
                                       f"{info.file_size:,} bytes: damaged or forged")
            total += declared
    check_memory(total, "reading its arrays", where=path)


def _check_finite(path, key, array):
    if not np.all(np.isfinite(array)):
        nan, inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        what = " and ".join(w for w, c in ((f"{nan} NaN", nan), (f"{inf} Inf", inf)) if c)
        raise _fail(path, key, f"contains {what} values")


def _check_real_float(path, key, array, meaning):
    kind = array.dtype.kind
    if kind in "iub":
        raise _fail(path, key, f"integer {array.dtype} values; expected float32/float64 {meaning}")
    if kind == "c":
        raise _fail(path, key, f"complex values; expected real float32/float64 {meaning}")
    if array.dtype not in (np.float32, np.float64):
        raise _fail(path, key, f"dtype {array.dtype} not accepted; expected float32/float64 {meaning}")


def _check_complex(path, key, array, ndim):
    if array.ndim != ndim:
        raise _fail(path, key, f"expected {ndim} dimensions, got shape {array.shape}")
    if array.dtype not in (np.complex64, np.complex128):
        raise _fail(path, key, f"dtype {array.dtype} not accepted; expected complex64/complex128")
    _check_finite(path, key, array)


def _check_energy(path, key, energy: np.ndarray, what: str) -> None:
    """Refuse arrays that carry no signal: zero energy (all zeros), or energy that overflows to Inf.
    `energy` is the sum of squares per `what` (float64)."""
    energy = np.atleast_1d(energy)
    overflow = ~np.isfinite(energy)
    if overflow.any():
        raise _fail(path, key, f"energy (sum of squares) is not finite in {int(overflow.sum())} of {energy.size} {what}(s) "
                               f"(first: index {int(np.flatnonzero(overflow)[0])}); values too large to carry a signal")
    empty = energy == 0
    if empty.all():
        raise _fail(path, key, f"no signal: every {what} is all zeros")
    if empty.any():
        raise _fail(path, key, f"no signal in {int(empty.sum())} of {energy.size} {what}s (all zeros; first: index "
                               f"{int(np.flatnonzero(empty)[0])}); drop them before training")


def _check_coords(path, key, array):
    if array.ndim != 1:
        raise _fail(path, key, f"expected 1 dimension (N,), got shape {array.shape}")
    _check_real_float(path, key, array, "pixel coordinates")
    _check_finite(path, key, array)


def central_energy_fraction(stack: np.ndarray, axis: int) -> float:
    """Fraction of the stack's energy (sum of squares) in the central half of `axis`."""
    other = tuple(a for a in range(stack.ndim) if a != axis)
    profile = np.square(stack, dtype=np.float64).sum(axis=other)
    total = profile.sum()
    if total <= 0:
        return float("nan")
    length = profile.shape[0]
    return float(profile[length // 4 : length - length // 4].sum() / total)


def detect_layout(
    shape: tuple[int, ...],
    n_positions: int,
    frame_shape: tuple[int, int],
    stack: np.ndarray | None = None,
    override: str | None = None,
    path: str | None = None,
    key: str = "diffraction",
) -> LayoutDecision:
    """Decide whether a stack is (N, H, W) or legacy (H, W, N). The one layout rule of the project.

    Evidence, in order: an explicit override; which axis has the length of the coordinates while the
    other two match the probe; for the ambiguous N == H == W case, the bright far-field centre that
    only detector axes have. When that is inconclusive it refuses rather than guess.
    """
    shape = tuple(shape)
    if len(shape) != 3:
        raise _fail(path, key, f"expected 3 dimensions (N,H,W) or (H,W,N), got shape {shape}")
    h, w = frame_shape
    fits = {"NHW": shape == (n_positions, h, w), "HWN": shape == (h, w, n_positions)}
    if override is not None:
        if override not in LAYOUTS:
            raise _fail(path, key, f"layout override '{override}' is not one of {'|'.join(LAYOUTS)}")
        if not fits[override]:
            raise _fail(
                path, key,
                f"layout override {override} does not fit shape {shape} with {n_positions} positions "
                f"and a {h}x{w} probe",
            )
        return LayoutDecision(override, "explicit layout override")
    matching = [name for name in LAYOUTS if fits[name]]
    if len(matching) == 1:
        scan_axis = 0 if matching[0] == "NHW" else 2
        return LayoutDecision(
            matching[0],
            f"axis {scan_axis} has length {n_positions} = len(xcoords); the other two match the "
            f"{h}x{w} probe",
        )
    if not matching:
        if n_positions not in shape:
            raise _fail(
                path, key,
                f"no axis of shape {shape} has length {n_positions} = len(xcoords) "
                "(coordinate length mismatch)",
            )
        frames = [s for i, s in enumerate(shape) if i != shape.index(n_positions)]
        raise _fail(
            path, key,
            f"frames {frames[0]}x{frames[1]} of shape {shape} do not match the {h}x{w} probe",
        )
    # N == H == W: only physical evidence can tell, and only when it is clear.
    if stack is not None:
        fractions = [central_energy_fraction(stack, axis) for axis in range(3)]
        detector = [f >= DETECTOR_MIN_CENTRAL_FRACTION for f in fractions]
        flat = [f <= SCAN_MAX_CENTRAL_FRACTION for f in fractions]
        summary = "central-half energy per axis " + ", ".join(f"{f:.3f}" for f in fractions)
        if flat[0] and detector[1] and detector[2]:
            return LayoutDecision("NHW", f"ambiguous shape {shape}: axes 1,2 hold the bright far-field centre, axis 0 is flat ({summary})")
        if flat[2] and detector[0] and detector[1]:
            return LayoutDecision("HWN", f"ambiguous shape {shape}: axes 0,1 hold the bright far-field centre, axis 2 is flat ({summary})")
    raise _fail(
        path, key,
        f"ambiguous layout: shape {shape} fits both NHW and HWN and the far-field centre does not "
        "decide it; pass an explicit layout (--layout NHW or --layout HWN)",
    )


# Bytes per object pixel that stitching holds at once (complex sums, weights, mask, the result).
STITCH_BYTES_PER_PIXEL = 64


def _check_scan_extent(path, ycoords: np.ndarray, xcoords: np.ndarray, size: int, obj: np.ndarray | None) -> None:
    """Every patch must lie on the object frame: the object's when the file has one, else the frame from the
    origin to the farthest patch, which stitching allocates (so its size is checked against memory first)."""
    corners = {key: np.floor(np.asarray(c, dtype=np.float64) - size / 2) for key, c in (("ycoords", ycoords), ("xcoords", xcoords))}
    frame = obj.shape if obj is not None else None
    for axis, (key, corner) in enumerate(corners.items()):
        limit = frame[axis] if frame is not None else None
        outside = (corner < 0) | (corner + size > limit) if limit is not None else corner < 0
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            where = f"the {frame[0]}x{frame[1]} objectGuess" if frame is not None else "the object frame (negative pixels)"
            raise _fail(path, key, f"{int(outside.sum())} of {outside.size} positions put their {size}x{size} patch "
                                   f"outside {where} (first: index {first}, centre {float(np.asarray(ycoords if axis == 0 else xcoords)[first]):.6g})")
    if frame is None:
        rows, cols = (float(c.max()) + size + 1 for c in corners.values())
        check_memory(rows * cols * STITCH_BYTES_PER_PIXEL, f"stitching onto the {rows:.3g} x {cols:.3g} pixel frame its "
                                                           "positions span", where=path, key="xcoords/ycoords")


def _parse_metadata(path, array) -> dict:
    if array.ndim != 0 or array.dtype.kind != "U":
        raise _fail(path, "metadata", f"expected a 0-d unicode JSON string, got {array.dtype} shape {array.shape}")
    try:
        value = json.loads(str(array))
    except json.JSONDecodeError as exc:
        raise _fail(path, "metadata", f"not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise _fail(path, "metadata", "JSON must be an object")
    return value


def _merge_ptychopinn_metadata(path, array, metadata: dict) -> dict:
    """Take the photon count from PtychoPINN's `_metadata` when ours has none; refuse a contradiction."""
    if array.ndim != 0 or array.dtype.kind != "U":
        raise _fail(path, PTYCHOPINN_METADATA_KEY, f"expected a 0-d unicode JSON string, got {array.dtype} shape {array.shape}")
    try:
        nphotons = ptychopinn_nphotons(array)
    except json.JSONDecodeError as exc:
        raise _fail(path, PTYCHOPINN_METADATA_KEY, f"not valid JSON ({exc.msg} at char {exc.pos})") from None
    if nphotons is None:
        return metadata
    ours = metadata.get("nphotons")
    if ours is not None and ours != nphotons:
        raise _fail(path, PTYCHOPINN_METADATA_KEY, f"physics_parameters.nphotons {nphotons:g} contradicts "
                                                   f"metadata nphotons {ours:g}")
    return {**metadata, "nphotons": nphotons}


def load_npz(path: str | os.PathLike, layout: str | None = None) -> PtychoData:
    """Load and validate a dataset; return it in canonical (N, H, W) orientation.

    `layout` ("NHW" or "HWN") overrides detection. Any violation raises PtychoError naming the file,
    the key and the problem.
    """
    path = str(path)
    arrays = _read_members(path)

    if "diffraction" not in arrays and "diff3d" in arrays:
        arrays["diffraction"] = arrays["diff3d"]
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise _fail(path, key, "required key missing")

    raw = arrays["diffraction"]
    if raw.size == 0:
        raise _fail(path, "diffraction", f"empty array of shape {raw.shape}")
    _check_real_float(path, "diffraction", raw, "amplitude (sqrt of intensity)")
    _check_finite(path, "diffraction", raw)
    if raw.min() < 0:
        raise _fail(path, "diffraction", f"negative amplitude (min {raw.min():.4g}); expected amplitude >= 0")
    if "diff3d" in arrays and arrays["diff3d"] is not raw:
        if arrays["diff3d"].shape != raw.shape or not np.array_equal(arrays["diff3d"], raw):
            raise _fail(path, "diff3d", "differs from 'diffraction' (both present, they must be equal)")

    probe = arrays["probeGuess"]
    _check_complex(path, "probeGuess", probe, ndim=2)
    with np.errstate(over="ignore"):
        _check_energy(path, "probeGuess", np.sum(np.abs(probe.astype(np.complex128)) ** 2), "probe")
    _check_coords(path, "xcoords", arrays["xcoords"])
    _check_coords(path, "ycoords", arrays["ycoords"])
    n = arrays["xcoords"].shape[0]
    if arrays["ycoords"].shape[0] != n:
        raise _fail(
            path, "ycoords",
            f"has {arrays['ycoords'].shape[0]} entries but xcoords has {n} (coordinate length mismatch)",
        )

    with np.errstate(over="ignore"):  # before the layout: detecting it needs a signal
        _check_energy(path, "diffraction", np.sum(np.square(raw, dtype=np.float64)), "pattern")
    decision = detect_layout(raw.shape, n, probe.shape, stack=raw, override=layout, path=path)
    diffraction = raw if decision.layout == "NHW" else np.ascontiguousarray(np.moveaxis(raw, 2, 0))
    with np.errstate(over="ignore"):
        _check_energy(path, "diffraction", np.sum(np.square(diffraction, dtype=np.float64), axis=(1, 2)), "pattern")

    starts = {}
    for key, measured in (("xcoords_start", "xcoords"), ("ycoords_start", "ycoords")):
        if key in arrays:
            _check_coords(path, key, arrays[key])
            if arrays[key].shape != (n,):
                raise _fail(path, key, f"has shape {arrays[key].shape}, expected ({n},) like {measured}")
            starts[key] = arrays[key]
        else:
            starts[key] = arrays[measured]

    obj = arrays.get("objectGuess")
    if obj is not None:
        _check_complex(path, "objectGuess", obj, ndim=2)
    patches = arrays.get("Y")
    if patches is not None:
        _check_complex(path, "Y", patches, ndim=3)
        if patches.shape != diffraction.shape:
            raise _fail(path, "Y", f"has shape {patches.shape}, expected {diffraction.shape} (N,H,W)")

    _check_scan_extent(path, arrays["ycoords"], arrays["xcoords"], diffraction.shape[1], obj)

    metadata = _parse_metadata(path, arrays["metadata"]) if "metadata" in arrays else {}
    if PTYCHOPINN_METADATA_KEY in arrays:
        metadata = _merge_ptychopinn_metadata(path, arrays[PTYCHOPINN_METADATA_KEY], metadata)
    nphotons = metadata.get("nphotons")
    if nphotons is not None and (isinstance(nphotons, bool) or not isinstance(nphotons, (int, float))
                                 or not math.isfinite(nphotons) or nphotons <= 0):
        raise _fail(path, "metadata", f"nphotons must be a finite number > 0, got {str(nphotons)[:40]!r}")
    scan_index = arrays.get("scan_index")
    if scan_index is not None and (scan_index.shape != (n,) or scan_index.dtype.kind not in "iu"):
        raise _fail(path, "scan_index", f"expected ({n},) integers, got {scan_index.dtype} shape {scan_index.shape}")
    extras = {k: v for k, v in arrays.items() if k not in KNOWN_KEYS}
    return PtychoData(
        path=path,
        diffraction=diffraction,
        probe=probe,
        xcoords=arrays["xcoords"],
        ycoords=arrays["ycoords"],
        xcoords_start=starts["xcoords_start"],
        ycoords_start=starts["ycoords_start"],
        layout=decision,
        object=obj,
        patches=patches,
        scan_index=scan_index,
        metadata=metadata,
        extras=extras,
    )
