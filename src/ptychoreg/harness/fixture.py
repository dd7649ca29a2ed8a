"""The minimal fixture: a small, deterministic, byte-reproducible subset of the canonical dataset.

Contract: docs/design/data-contract.md ("Fixture"). The acceptance criteria live in params.yaml
(`fixture:`) and are enforced here; the same source and parameters give the same bytes everywhere.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import ptychoreg
from ptychoreg.core import __version__
from ptychoreg.core.config import FixtureSpec
from ptychoreg.core.contract import PtychoData, load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.fileio import npz_bytes, file_digest, to_json, write_bytes, write_text
from ptychoreg.core.geometry import extract_patches
from ptychoreg.core.grouping import make_groups
from ptychoreg.core.ptychopinn import PTYCHOPINN_METADATA_KEY, ptychopinn_metadata

FORMAT_VERSION = 1


def sidecar_path(output: str | Path) -> Path:
    """Where a fixture's sidecar lives when no path is given: beside it, with .json."""
    return Path(output).with_suffix(".json")


def select_indices(n_total: int, size: int, strategy: str) -> np.ndarray:
    """Deterministic subset: `stratified` = evenly spaced over the scan order (first and last included,
    integer arithmetic so no platform can round differently); `first` = the first `size`."""
    if strategy == "first":
        return np.arange(size, dtype=np.int64)
    if strategy == "stratified":
        if size == 1:
            return np.zeros(1, dtype=np.int64)
        i = np.arange(size, dtype=np.int64)
        return (2 * i * (n_total - 1) + (size - 1)) // (2 * (size - 1))
    raise PtychoError(None, f"strategy '{strategy}' is not one of stratified, first")


def _coverage(sub: np.ndarray, full: np.ndarray) -> float:
    span = float(np.ptp(full))
    return float(np.ptp(sub) / span) if span > 0 else 1.0


@dataclass(frozen=True)
class Fixture:
    arrays: dict  # name -> array, exactly what the .npz holds
    indices: np.ndarray
    transformations: list[str]
    coverage: dict
    unique_positions: int


def build_fixture(data: PtychoData, spec: FixtureSpec) -> Fixture:
    """Cut the subset, convert dtypes, cut ground-truth patches; refuse what the criteria forbid."""
    src = data.path
    if spec.subset_size < spec.min_subset:
        raise PtychoError(src, f"subset size {spec.subset_size} is below the minimum {spec.min_subset} (fixture.min_subset)")
    if spec.subset_size > data.n:
        raise PtychoError(src, f"subset size {spec.subset_size} exceeds the {data.n} patterns of the source")
    if data.object is None:
        raise PtychoError(src, "required to cut the ground-truth patches Y of the fixture", key="objectGuess")

    idx = select_indices(data.n, spec.subset_size, spec.strategy)
    x, y = data.xcoords[idx].astype(np.float64), data.ycoords[idx].astype(np.float64)
    unique = len(np.unique(np.stack([y, x], axis=1), axis=0))
    if unique < spec.min_unique_positions:
        raise PtychoError(src, f"the {spec.strategy} subset of {spec.subset_size} has {unique} unique scan position(s), "
                               f"fewer than {spec.min_unique_positions} (fixture.min_unique_positions)", key="xcoords/ycoords")
    try:
        make_groups(y, x, spec.gridsize, None, sampling="sequential", max_offset=data.frame_shape[0] / 2)
    except PtychoError as exc:
        raise PtychoError(src, f"subset cannot serve gridsize {spec.gridsize}: {exc.problem}", key="xcoords/ycoords") from None

    fdt, cdt = np.dtype(spec.diffraction_dtype), np.dtype(spec.complex_dtype)
    patches = extract_patches(data.object, y, x, data.frame_shape[0])
    metadata = dict(data.metadata)
    if "layout" in metadata:
        metadata["layout"] = "NHW"
    arrays = {
        "diffraction": data.diffraction[idx].astype(fdt),
        "probeGuess": data.probe.astype(cdt),
        "objectGuess": data.object.astype(cdt),
        "xcoords": x,
        "ycoords": y,
        "xcoords_start": data.xcoords_start[idx].astype(np.float64),
        "ycoords_start": data.ycoords_start[idx].astype(np.float64),
        "Y": patches.astype(cdt),
        "metadata": np.array(json.dumps(metadata, sort_keys=True)),
        # PtychoPINN's loader reads the stack as diff3d and its scan membership as scan_index.
        "diff3d": data.diffraction[idx].astype(fdt),
        "scan_index": (data.scan_index[idx] if data.scan_index is not None else np.zeros(len(idx))).astype(np.int64),
    }
    transformations = [
        f"diffraction: layout {data.layout.layout} -> NHW ({data.layout.evidence})",
        f"subset: {spec.strategy} {spec.subset_size} of {data.n} patterns (indices in sidecar)",
        f"diffraction: {data.diffraction.dtype} -> {fdt}",
        f"probeGuess, objectGuess: {data.probe.dtype}, {data.object.dtype} -> {cdt}",
        "xcoords, ycoords, xcoords_start, ycoords_start: subset, values unchanged (float64)",
        f"Y: cut from objectGuess at the subset positions (geometry.extract_patches, Fourier sub-pixel shift), -> {cdt}",
        "metadata: layout entry set to NHW" if "layout" in metadata else "metadata: carried unchanged",
    ]
    transformations.append("diff3d: the same array as diffraction, for PtychoPINN's loader; scan_index: "
                           + ("the subset's" if data.scan_index is not None else "zeros (one scan)"))
    nphotons = metadata.get("nphotons")
    if isinstance(nphotons, (int, float)) and not isinstance(nphotons, bool):
        arrays[PTYCHOPINN_METADATA_KEY] = ptychopinn_metadata(nphotons, data.frame_shape[0], transformations)
        transformations.append(f"{PTYCHOPINN_METADATA_KEY}: PtychoPINN's metadata record (nphotons {nphotons:g})")
    else:
        transformations.append(f"{PTYCHOPINN_METADATA_KEY}: omitted, the source states no nphotons "
                               "(PtychoPINN will assume 1e9)")
    if data.extras:
        transformations.append(f"dropped unknown keys: {', '.join(sorted(data.extras))}")
    coverage = {"x": _coverage(x, data.xcoords), "y": _coverage(y, data.ycoords)}
    return Fixture(arrays, idx, transformations, coverage, unique)


def generator_code() -> dict:
    """What identifies the generator: the sha256 of every ptychoreg source file loaded in this process
    (the code the make_fixture stage depends on), by path inside the package. Unlike a git commit or a
    clock, it changes exactly when the code that made the bytes changes, so the same inputs give the same
    sidecar on every machine and at every later commit."""
    root = Path(ptychoreg.__file__).resolve().parent
    files = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().is_relative_to(root):
            files[Path(path).resolve().relative_to(root).as_posix()] = file_digest(path)
    return {"files": sorted(files), "sha256": hashlib.sha256(to_json(files).encode()).hexdigest()}


def array_summary(arrays: dict) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in sorted(arrays.items())}


def generate(
    source: str | Path,
    spec: FixtureSpec,
    output: str | Path | None = None,
    metadata_out: str | Path | None = None,
    layout: str | None = None,
) -> dict:
    """Build the fixture from `source` and write it and its sidecar atomically. Returns the sidecar.

    The sidecar holds no clock time, host or commit: every tracked output is byte-identical wherever and
    whenever it is rebuilt from the same inputs (wall-clock facts go to metrics/, see `fixture_metrics`)."""
    output = Path(output or spec.output)
    metadata_out = Path(metadata_out or spec.sidecar or sidecar_path(output))
    data = load_npz(source, layout=layout)
    fixture = build_fixture(data, spec)
    payload = npz_bytes(fixture.arrays)
    digest = hashlib.sha256(payload).hexdigest()
    sidecar = {
        "version": FORMAT_VERSION,
        "generator": {"module": __name__, "version": __version__, "code": generator_code()},
        "source": {"path": str(source), "sha256": file_digest(source), "bytes": Path(source).stat().st_size,
                   "n": data.n, "layout": data.layout.layout, "layout_evidence": data.layout.evidence},
        "params": spec.model_dump(),
        "subset": {"strategy": spec.strategy, "size": spec.subset_size, "indices": fixture.indices.tolist()},
        "transformations": fixture.transformations,
        "fixture": {"path": str(output), "sha256": digest, "bytes": len(payload)},
        "arrays": array_summary(fixture.arrays),
        "coverage": fixture.coverage,
        "unique_positions": fixture.unique_positions,
    }
    write_bytes(output, payload)
    write_text(metadata_out, to_json(sidecar))
    return sidecar


def fixture_metrics(sidecar: dict) -> dict:
    """metrics/fixture.json: what `dvc metrics diff` should show about the fixture. Only facts of the
    fixture itself, no time or date of the build: the file is the same bytes on every machine."""
    arrays = sidecar["arrays"]
    return {
        "sha256": sidecar["fixture"]["sha256"],
        "bytes": sidecar["fixture"]["bytes"],
        "canonical_bytes": sidecar["source"]["bytes"],
        "canonical_n": sidecar["source"]["n"],
        "size_ratio": sidecar["fixture"]["bytes"] / sidecar["source"]["bytes"],
        "n": sidecar["subset"]["size"],
        "shapes": {k: v["shape"] for k, v in arrays.items()},
        "dtypes": {k: v["dtype"] for k, v in arrays.items()},
        "coverage": sidecar["coverage"],
        "unique_positions": sidecar["unique_positions"],
    }


def recorded_sha256(metrics_path: str | Path) -> str:
    """The fixture's sha256 as committed in metrics/fixture.json (what a fixture on disk must match)."""
    try:
        return json.loads(Path(metrics_path).read_text())["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise PtychoError(metrics_path, f"cannot read the fixture's recorded sha256 ({exc})") from None


def verify_fixture(path: str | Path, expected_sha256: str, what: str) -> None:
    """Refuse a fixture whose bytes are not the ones recorded (corrupt cache, tampering)."""
    if not Path(path).is_file():
        raise PtychoError(path, "fixture not found (run `dvc pull` or `dvc repro make_fixture`)")
    actual = file_digest(path)
    if actual != expected_sha256:
        raise PtychoError(path, f"sha256 {actual[:16]}... does not match {expected_sha256[:16]}... recorded in {what}; "
                                "the file was altered or corrupted (rebuild with `dvc repro -f -s make_fixture`)")
