"""Small, physically consistent ptychography datasets, simulated with the project's own physics.

For tests and the hardening matrix: an object, a probe, a jittered raster scan and noise-free far-field
amplitudes computed exactly as the canonical simulation does (geometry.extract_patches, then
|fftshift(fft2(patch * probe, ortho))| * N/2).
"""

from __future__ import annotations

import json

import numpy as np

from ptychoreg.core.geometry import extract_patches


def synthetic_arrays(n: int = 24, size: int = 16, layout: str = "NHW", seed: int = 0, step: float = 2.3) -> dict:
    """Arrays of a dataset with `n` patterns of `size` x `size`, stored in `layout` ("NHW" or "HWN")."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    extent = int(size + step * side + 4)
    yy, xx = np.mgrid[:extent, :extent]
    thickness = 0.5 + 0.5 * np.sin(yy / 3.0) * np.cos(xx / 4.0)
    obj = np.exp(-thickness) * np.exp(-1j * 1.5 * thickness)
    r = np.hypot(*np.mgrid[-size // 2 : size // 2, -size // 2 : size // 2])
    probe = np.exp(-(r / (size / 5)) ** 2) * np.exp(1j * 0.3 * r)
    probe = probe / np.sqrt(np.sum(np.abs(probe) ** 2))
    grid = np.arange(side) * step + size / 2 + 1.5
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    y = ys.ravel()[:n] + rng.normal(0, 0.2, n)
    x = xs.ravel()[:n] + rng.normal(0, 0.2, n)
    patches = extract_patches(obj, y, x, size)
    amplitude = np.abs(np.fft.fftshift(np.fft.fft2(patches * probe, norm="ortho"), axes=(-2, -1))) * (size / 2)
    diffraction = amplitude if layout == "NHW" else np.moveaxis(amplitude, 0, 2)
    return {
        "diffraction": np.ascontiguousarray(diffraction),
        "probeGuess": probe.astype(np.complex128),
        "objectGuess": obj.astype(np.complex128),
        "xcoords": x,
        "ycoords": y,
        "metadata": np.array(json.dumps({"nphotons": 1e6, "layout": layout})),
    }
