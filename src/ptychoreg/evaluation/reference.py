"""The classical reference: ePIE (Maiden & Rodenburg 2009) with the known probe and positions, in torch.

What the physics-informed network is measured against (the `reference` stage): an iterative solver that
needs no training but iterates over every pattern for each new dataset. Same physics and patch
convention as everything else (`ptychoreg.core.geometry`): patch = Fourier-shift(crop) by the position's
fractional part, exit wave = probe * patch, measured amplitude = |fftshift(fft2(exit, "ortho"))| * N/2.
The sub-pixel shift is unitary, so its adjoint (the inverse shift) carries each update back to the crop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ptychoreg.core.contract import PtychoData
from ptychoreg.core.geometry import _fourier_ramp, default_canvas_shape, patch_corners, stitch


@dataclass(frozen=True)
class EpieResult:
    object: np.ndarray  # (M1, M2) complex64 on the data's object frame
    history: list[dict]  # per epoch: epoch, amplitude error (relative), seconds


def epie(data: PtychoData, epochs: int, seed: int = 0, alpha: float = 1.0,
         canvas: tuple[int, int] | None = None, log: Callable[[str], None] = print) -> EpieResult:
    """Reconstruct the object from `data`'s patterns with ePIE: `epochs` passes over every position in a
    seeded random order, object update step `alpha`, probe fixed (known)."""
    size = data.frame_shape[0]
    canvas = canvas or (data.object.shape if data.object is not None else None)
    if canvas is None:
        canvas = default_canvas_shape(data.ycoords, data.xcoords, size)
    cy, fy = patch_corners(data.ycoords, size)
    cx, fx = patch_corners(data.xcoords, size)
    ramps = torch.from_numpy(_fourier_ramp(size, fy, fx).astype(np.complex64))
    probe = torch.from_numpy(data.probe.astype(np.complex64))
    step = alpha * probe.conj() / float((probe.abs() ** 2).max())
    # Measured amplitudes in the unshifted, orthonormal FFT frame of the exit wave.
    measured = torch.from_numpy(np.ascontiguousarray(np.fft.ifftshift(data.diffraction, axes=(-2, -1)) / (size / 2),
                                                     dtype=np.float32))
    obj = torch.ones(canvas, dtype=torch.complex64)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        error = total = 0.0
        for i in torch.randperm(data.n, generator=generator).tolist():
            window = obj[cy[i] : cy[i] + size, cx[i] : cx[i] + size]
            patch = torch.fft.ifft2(torch.fft.fft2(window) * ramps[i])
            exit_wave = probe * patch
            far = torch.fft.fft2(exit_wave, norm="ortho")
            amplitude = far.abs()
            error += float(((amplitude - measured[i]) ** 2).sum())
            total += float((measured[i] ** 2).sum())
            corrected = torch.fft.ifft2(far * (measured[i] / amplitude.clamp_min(1e-12)), norm="ortho")
            update = step * (corrected - exit_wave)
            window += torch.fft.ifft2(torch.fft.fft2(update) * ramps[i].conj())
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch, "amplitude_error": math.sqrt(error / total), "seconds": seconds})
        log(f"ePIE epoch {epoch:>3}/{epochs}  relative amplitude error {history[-1]['amplitude_error']:.5f}  ({seconds:.2f} s)")
    return EpieResult(obj.numpy(), history)


def scanned_region(data: PtychoData, canvas: tuple[int, int]) -> np.ndarray:
    """The region the PINN's reconstruction covers (the stitcher's trusted centres), so both are scored
    over the same pixels."""
    size = data.frame_shape[0]
    ones = np.ones((data.n, size, size), np.complex64)
    return stitch(ones, data.ycoords, data.xcoords, canvas, trusted=size // 2).mask
