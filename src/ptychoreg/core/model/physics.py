"""Differentiable ptychography physics in torch: forward model, losses, group consistency.

Facts: docs/design/physics-and-model.md. Amplitudes are in the dataset's scale,
|fftshift(fft2(patch * probe, norm="ortho"))| * N/2; photon counts are (amplitude * s)^2 with the
intensity scale s = sqrt(photons per pattern) / (N/2).
"""

from __future__ import annotations

import math

import torch


# Below this summed window weight the merged group canvas fades to zero instead of dividing by ~0;
# 0.2 keeps the fade smooth enough that sub-pixel re-extraction rings < 1e-2 (tests/test_physics.py).
_MERGE_MIN_WEIGHT = 0.2


def forward_amplitude(patches: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """Far-field amplitude of complex object patches (..., N, N) under `probe` (N, N)."""
    size = patches.shape[-1]
    far = torch.fft.fftshift(torch.fft.fft2(patches * probe, norm="ortho"), dim=(-2, -1))
    return far.abs() * (size / 2)


def poisson_nll(predicted: torch.Tensor, measured: torch.Tensor, intensity_scale: float) -> torch.Tensor:
    """Mean Poisson negative log-likelihood per pixel, in photon-count units.

    The saturated model's value is subtracted (half the Poisson deviance), so a perfect fit scores
    about 0.5 per pixel at the noise floor and the number means the same on any dataset.
    """
    rate = torch.square(predicted * intensity_scale)
    counts = torch.square(measured * intensity_scale)
    nll = rate - torch.xlogy(counts, rate + 1e-6) - counts + torch.xlogy(counts, counts)
    return nll.mean()


def gaussian_nll(predicted: torch.Tensor, measured: torch.Tensor, intensity_scale: float) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood of the amplitudes per pixel, in photon-count units:
    2 (sqrt(rate) - sqrt(counts))^2, pty-chi's "gaussian" noise model.

    The square root stabilises the Poisson variance, so this equals `poisson_nll` to second order
    near the fit; unlike it, its gradient stays bounded where a predicted amplitude is near zero and
    the measured counts are not (Poisson: -2 counts / amplitude), the spikes that stall training.
    """
    return 2 * torch.square((predicted - measured) * intensity_scale).mean()


def mae(predicted: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    return (predicted - measured).abs().mean()


def loss_fn(kind: str, predicted: torch.Tensor, measured: torch.Tensor, intensity_scale: float) -> torch.Tensor:
    if kind == "poisson":
        return poisson_nll(predicted, measured, intensity_scale)
    if kind == "gaussian":
        return gaussian_nll(predicted, measured, intensity_scale)
    if kind == "mae":
        return mae(predicted, measured)
    raise ValueError(f"unknown loss '{kind}'")


def fourier_shift(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move the content of (..., M, M) complex images by `shifts` (..., 2) = (dy, dx) pixels (sub-pixel)."""
    size = images.shape[-1]
    k = torch.fft.fftfreq(size, device=images.device, dtype=shifts.dtype)
    # The ramp exp(-2 pi i (ky dy + kx dx)) is the outer product of one ramp per axis: 2M complex
    # exponentials per image instead of M^2, in every grouped training step.
    angle = -2 * math.pi * k * shifts[..., None]  # (..., 2, M)
    ramps = torch.polar(torch.ones_like(angle), angle)
    return torch.fft.ifft2(torch.fft.fft2(images) * ramps[..., 0, :, None] * ramps[..., 1, None, :])


def merge_group(patches: torch.Tensor, offsets: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Make a group's overlapping patches consistent (PtychoPINN's object.big): place every member's
    prediction at its offset on a shared canvas, average with window weights, cut each member back out.

    patches (B, C, N, N) complex, offsets (B, C, 2) in pixels from the group centre, window (N, N)
    real: the weight of each pixel of a prediction. The canvas is 2N wide so members up to N/2 px
    from the centre never wrap around.
    """
    size = patches.shape[-1]
    pad = size // 2
    padded_window = torch.nn.functional.pad(window, (pad, pad, pad, pad)).to(patches.dtype)
    padded = torch.nn.functional.pad(patches, (pad, pad, pad, pad))
    placed = fourier_shift(padded * padded_window, offsets)
    weights = fourier_shift(padded_window.expand_as(padded), offsets).real
    canvas = placed.sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True).clamp_min(_MERGE_MIN_WEIGHT)
    members = fourier_shift(canvas.expand_as(padded), -offsets)
    return members[..., pad : pad + size, pad : pad + size]
