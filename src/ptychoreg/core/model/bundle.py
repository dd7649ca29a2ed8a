"""The model bundle: everything inference needs, in a file that cannot run code when loaded.

Saved with torch.save; loaded only with torch.load(weights_only=True), which refuses any pickled
global outside tensors and plain containers. Inference reads only the bundle and the data file.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import platform
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ptychoreg.core import __version__, numerics
from ptychoreg.core.config import Config, validated
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.fileio import write_bytes
from ptychoreg.core.model.network import PtychoNet

BUNDLE_FORMAT = "ptychoreg-model-bundle"
BUNDLE_VERSION = 1
_REQUIRED = ("architecture", "state_dict", "config", "legacy", "norm_factor", "intensity_scale", "probe", "versions")


@dataclass(frozen=True)
class Bundle:
    model: PtychoNet
    probe: torch.Tensor  # (N, N) complex64
    norm_factor: float
    intensity_scale: float
    config: dict
    legacy: dict
    meta: dict  # the whole loaded dict, state_dict excluded


def versions() -> dict:
    """What produced a bundle. Only facts that are the same on every machine of the pinned set, so the
    bundle's bytes are too: the interpreter as major.minor (a patch release changes no numbers)."""
    return {
        "ptychoreg": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": ".".join(platform.python_version_tuple()[:2]),
        "numerics": numerics.describe(),
    }


def save_bundle(path: str | os.PathLike, model: PtychoNet, probe: np.ndarray, *, config: dict, legacy: dict,
                norm_factor: float, intensity_scale: float, extra: dict | None = None) -> None:
    payload = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "architecture": {"name": "PtychoNet", **model.architecture()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config,
        "legacy": legacy,
        "norm_factor": float(norm_factor),
        "intensity_scale": float(intensity_scale),
        "probe": torch.from_numpy(np.asarray(probe, dtype=np.complex64).copy()),
        "versions": versions(),
        **(extra or {}),
    }
    # Saved through a buffer: torch names the archive's folder after the file, and the temporary name
    # would make every bundle's bytes differ. This way the same model gives the same bytes.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_record(p: Path, payload: dict, model: PtychoNet) -> None:
    """What the bundle records beside its weights must agree with them and be usable: the run's config
    (validated; its model section against the architecture) and the normalisation values."""
    if not isinstance(payload["config"], dict):
        raise PtychoError(p, f"expected the run's settings (a mapping), got {type(payload['config']).__name__}", key="config")
    config = validated(Config, payload["config"], str(p), "config")
    arch, stated = model.architecture(), payload["config"].get("model") or {}
    for key, value in config.model.model_dump().items():
        if key in stated and key in arch and arch[key] != value:
            raise PtychoError(p, f"the recorded config says {value!r} but the weights are PtychoNet({key}={arch[key]!r})",
                              key=f"config.model.{key}")
    for key in ("norm_factor", "intensity_scale"):
        value = payload[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise PtychoError(p, f"must be a finite number > 0, got {str(value)[:40]!r}", key=key)


def load_bundle(path: str | os.PathLike, device: torch.device | str = "cpu") -> Bundle:
    p = Path(path)
    if not p.exists():
        raise PtychoError(p, "model bundle not found")
    if p.is_dir():
        raise PtychoError(p, "is a directory, expected a model bundle file")
    if p.stat().st_size == 0:
        raise PtychoError(p, "empty file, expected a model bundle")
    try:
        payload = torch.load(p, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise PtychoError(p, f"refused: the file holds pickled objects that a safe load does not allow ({_first_line(exc)[:160]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise PtychoError(p, f"not a readable model bundle (truncated or corrupt: {_first_line(exc)[:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        raise PtychoError(p, f"not a {BUNDLE_FORMAT} file")
    if payload.get("format_version") != BUNDLE_VERSION:
        raise PtychoError(p, f"bundle format version {payload.get('format_version')!r}, this code reads {BUNDLE_VERSION}", key="format_version")
    for key in _REQUIRED:
        if key not in payload:
            raise PtychoError(p, "required entry missing", key=key)
    arch = payload["architecture"]
    if not isinstance(arch, dict) or arch.get("name") != "PtychoNet":
        raise PtychoError(p, f"architecture {arch!r} is not PtychoNet", key="architecture")
    try:
        # Bundles written before heads and upsampling were options hold the default layout.
        options = {key: str(arch[key]) for key in ("heads", "upsampling") if key in arch}
        model = PtychoNet(size=int(arch["size"]), gridsize=int(arch["gridsize"]), width=int(arch["width"]),
                          probe_big=bool(arch["probe_big"]), **options)
    except (KeyError, TypeError, ValueError) as exc:
        raise PtychoError(p, f"unusable architecture description ({_first_line(exc)})", key="architecture") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = payload["state_dict"]
    found = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if found != expected:
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        reshaped = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        raise PtychoError(
            p,
            f"architecture mismatch: {len(missing)} missing, {len(unexpected)} unexpected and "
            f"{len(reshaped)} reshaped weights for PtychoNet("
            + ", ".join(f"{k}={v}" for k, v in model.architecture().items()) + ")"
            + (f" (first: {(missing + unexpected + reshaped)[0]})" if missing or unexpected or reshaped else ""),
            key="state_dict",
        )
    bad = sorted(k for k, v in state.items() if not (isinstance(v, torch.Tensor) and (not v.is_floating_point()
                                                                                      or bool(torch.isfinite(v).all()))))
    if bad:
        raise PtychoError(p, f"{len(bad)} weight tensor(s) hold NaN or Inf values or are not tensors (first: {bad[0]})",
                          key="state_dict")
    _check_record(p, payload, model)
    model.load_state_dict(state)
    model.to(device).eval()
    probe = payload["probe"]
    if not isinstance(probe, torch.Tensor) or tuple(probe.shape) != (model.size, model.size) or not probe.is_complex():
        raise PtychoError(p, f"expected a complex {model.size}x{model.size} probe tensor", key="probe")
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return Bundle(model, probe.to(device), float(payload["norm_factor"]), float(payload["intensity_scale"]),
                  payload["config"], payload["legacy"], meta)
