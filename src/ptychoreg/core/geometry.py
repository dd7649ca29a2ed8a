"""The patch frame: how a scan position maps a patch onto the object, both ways.

One convention, used by the fixture generator (cutting ground-truth patches), the physics tests and the
stitcher, so the three can never disagree:

    patch[i, j] = object(y - size/2 + i, x - size/2 + j)

with (y, x) = (ycoords, xcoords) in object pixels (row, column). The integer part of the corner is a
crop; the fractional part is a Fourier (sinc) shift of that crop. This is the convention the canonical
simulation used: its forward-model residual is at the Poisson noise floor only with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptychoreg.core.errors import PtychoError


@dataclass(frozen=True)
class Stitched:
    object: np.ndarray  # (M1, M2) complex64; zero outside the mask
    weight: np.ndarray  # (M1, M2) float64 sum of window weights
    mask: np.ndarray  # (M1, M2) bool: pixels covered by at least one trusted patch centre


def patch_corners(coords: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer top-left corner and fractional offset (in [0, 1)) of patches centred at `coords`."""
    start = np.asarray(coords, dtype=np.float64) - size / 2
    corner = np.floor(start)
    return corner.astype(np.int64), start - corner


def _fourier_ramp(size: int, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """exp(2 pi i (ky fy + kx fx)) per patch: multiplying a spectrum by it samples at +(fy, fx)."""
    k = np.fft.fftfreq(size)
    ry = np.exp(2j * np.pi * k[None, :] * fy[:, None])
    rx = np.exp(2j * np.pi * k[None, :] * fx[:, None])
    return ry[:, :, None] * rx[:, None, :]


def _check_inside(corner_y, corner_x, extent, canvas_shape, what):
    bad = (corner_y < 0) | (corner_x < 0) | (corner_y + extent > canvas_shape[0]) | (corner_x + extent > canvas_shape[1])
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise PtychoError(
            None,
            f"{int(bad.sum())} scan position(s) put the {what} outside the {canvas_shape[0]}x{canvas_shape[1]} "
            f"object frame (first: index {first}, corner row {int(corner_y[first])}, column {int(corner_x[first])})",
        )


def extract_patches(obj: np.ndarray, ycoords: np.ndarray, xcoords: np.ndarray, size: int) -> np.ndarray:
    """Cut (n, size, size) complex128 patches of `obj` at the scan positions (sub-pixel exact)."""
    cy, fy = patch_corners(ycoords, size)
    cx, fx = patch_corners(xcoords, size)
    _check_inside(cy, cx, size, obj.shape, f"{size}x{size} patch")
    offsets = np.arange(size)
    crops = obj[cy[:, None, None] + offsets[None, :, None], cx[:, None, None] + offsets[None, None, :]]
    spectrum = np.fft.fft2(crops.astype(np.complex128, copy=False))
    return np.fft.ifft2(spectrum * _fourier_ramp(size, fy, fx))


def stitch_window(size: int) -> np.ndarray:
    """Separable Hann window sampled at pixel centres: smooth seams, positive on every pixel."""
    t = (np.arange(size) + 0.5) / size
    w = 0.5 - 0.5 * np.cos(2 * np.pi * t)
    return np.outer(w, w)


def default_canvas_shape(ycoords: np.ndarray, xcoords: np.ndarray, size: int) -> tuple[int, int]:
    """The smallest frame holding every patch, for data without an object to define it."""
    cy, fy = patch_corners(ycoords, size)
    cx, fx = patch_corners(xcoords, size)
    return int(cy.max()) + size + 1, int(cx.max()) + size + 1


def stitch(
    patches: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    canvas_shape: tuple[int, int],
    trusted: int,
) -> Stitched:
    """Place patches on the object frame: the inverse of `extract_patches` on each trusted centre.

    Each patch is shifted back by its sub-pixel offset, cropped to its central `trusted` x `trusted`
    block and averaged into the canvas with a Hann weight. Fully vectorised (one bincount per channel).
    """
    n, size, _ = patches.shape
    if not 0 < trusted <= size:
        raise PtychoError(None, f"trusted crop {trusted} must lie in 1..{size}")
    cy, fy = patch_corners(ycoords, size)
    cx, fx = patch_corners(xcoords, size)
    lo = (size - trusted) // 2
    _check_inside(cy + lo, cx + lo, trusted, canvas_shape, f"{trusted}x{trusted} trusted centre")

    spectrum = np.fft.fft2(np.asarray(patches, dtype=np.complex128))
    on_grid = np.fft.ifft2(spectrum * np.conj(_fourier_ramp(size, fy, fx)))
    block = on_grid[:, lo : lo + trusted, lo : lo + trusted]

    offsets = np.arange(trusted)
    rows = cy[:, None, None] + lo + offsets[None, :, None]
    cols = cx[:, None, None] + lo + offsets[None, None, :]
    flat = (rows * canvas_shape[1] + cols).ravel()
    window = np.broadcast_to(stitch_window(trusted), block.shape)
    pixels = canvas_shape[0] * canvas_shape[1]
    weight = np.bincount(flat, weights=window.ravel(), minlength=pixels)
    real = np.bincount(flat, weights=(block.real * window).ravel(), minlength=pixels)
    imag = np.bincount(flat, weights=(block.imag * window).ravel(), minlength=pixels)
    mask = weight > 0
    obj = np.zeros(pixels, dtype=np.complex128)
    obj[mask] = (real[mask] + 1j * imag[mask]) / weight[mask]
    return Stitched(
        object=obj.reshape(canvas_shape).astype(np.complex64),
        weight=weight.reshape(canvas_shape),
        mask=mask.reshape(canvas_shape),
    )
