"""The forward model against the real data: a rounding, scaling or transpose bug cannot pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychoreg.core.contract import load_npz
from ptychoreg.core.geometry import stitch_window
from ptychoreg.core.model.physics import fourier_shift, forward_amplitude, gaussian_nll, loss_fn, mae, merge_group, poisson_nll

MIN_CORRELATION = 0.999


def _correlations(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    p = predicted.reshape(len(predicted), -1) - predicted.reshape(len(predicted), -1).mean(1, keepdims=True)
    m = measured.reshape(len(measured), -1) - measured.reshape(len(measured), -1).mean(1, keepdims=True)
    return (p * m).sum(1) / np.sqrt((p * p).sum(1) * (m * m).sum(1))


def _forward(data, probe=None, patches=None):
    patches = torch.from_numpy(data.patches if patches is None else patches)
    probe = torch.from_numpy(data.probe if probe is None else probe)
    return forward_amplitude(patches, probe).numpy()


def test_ground_truth_patches_reproduce_measured_diffraction(fixture_path):
    data = load_npz(fixture_path)
    corr = _correlations(_forward(data), data.diffraction)
    assert corr.min() >= MIN_CORRELATION, corr.min()
    # Scale: the model's amplitudes are in the data's own units (sum of squares per pattern agrees).
    energy_ratio = (_forward(data) ** 2).sum((1, 2)) / (data.diffraction.astype(np.float64) ** 2).sum((1, 2))
    assert np.all(np.abs(energy_ratio - 1) < 0.02), energy_ratio


def test_the_check_catches_transpose_mirror_and_rounding(fixture_path):
    data = load_npz(fixture_path)
    transposed = _correlations(_forward(data), np.ascontiguousarray(data.diffraction.transpose(0, 2, 1)))
    mirrored = _correlations(_forward(data, patches=np.ascontiguousarray(data.patches[:, ::-1])), data.diffraction)
    rounded = _correlations(_forward(data), np.round(data.diffraction))  # PtychoPINN's integer loader
    for corr in (transposed, mirrored, rounded):
        assert corr.min() < MIN_CORRELATION


def test_poisson_nll_is_minimal_at_the_truth_and_in_count_units(fixture_path):
    data = load_npz(fixture_path)
    measured = torch.from_numpy(data.diffraction)
    truth = torch.from_numpy(_forward(data))
    at_truth = poisson_nll(truth, measured, 31.25).item()
    assert 0 < at_truth < 1.0  # about half a count-unit per pixel at the noise floor
    assert poisson_nll(truth * 1.1, measured, 31.25).item() > at_truth + 1
    assert poisson_nll(truth, measured, 1.0).item() < at_truth / 100  # unscaled amplitudes barely register
    assert mae(truth, measured).item() < mae(truth * 1.1, measured).item()


def test_gaussian_nll_agrees_with_poisson_near_the_fit_and_has_bounded_gradients(fixture_path):
    data = load_npz(fixture_path)
    measured = torch.from_numpy(data.diffraction)
    truth = torch.from_numpy(_forward(data))
    # Near the fit the amplitudes' Gaussian NLL is the Poisson half-deviance to second order (measured:
    # within 20 % at the truth, where pixels of few counts dominate the remainder, 5 % at 10 % off).
    for factor in (0.9, 1.0, 1.02, 1.1):
        gaussian, poisson = gaussian_nll(truth * factor, measured, 31.25).item(), poisson_nll(truth * factor, measured, 31.25).item()
        assert gaussian == pytest.approx(poisson, rel=0.25), (factor, gaussian, poisson)
    assert gaussian_nll(truth * 1.1, measured, 31.25).item() > gaussian_nll(truth, measured, 31.25).item() + 1
    assert loss_fn("gaussian", truth, measured, 31.25).item() == gaussian_nll(truth, measured, 31.25).item()
    # Where a prediction is nearly dark and the counts are not, Poisson's gradient explodes; Gaussian's does not.
    predicted = truth.clone()
    bright = measured == measured.max()
    predicted[bright] = 1e-4
    grads = {}
    for name, fn in (("gaussian", gaussian_nll), ("poisson", poisson_nll)):
        leaf = predicted.clone().requires_grad_(True)
        fn(leaf, measured, 31.25).backward()
        grads[name] = leaf.grad.abs().max().item()
    assert grads["poisson"] > 1e3 * grads["gaussian"], grads


def test_fourier_shift_moves_content():
    image = torch.zeros(1, 32, 32, dtype=torch.complex64)
    image[0, 10, 12] = 1
    moved = fourier_shift(image, torch.tensor([[3.0, -2.0]]))
    assert tuple(np.unravel_index(moved.abs()[0].argmax().item(), (32, 32))) == (13, 10)


def test_fourier_shift_is_the_shift_theorem_per_image():
    # Sub-pixel shifts of a batch, each image its own (dy, dx), against the textbook phase ramp in float64.
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 3, 16, 16)) + 1j * rng.standard_normal((2, 3, 16, 16))
    shifts = rng.uniform(-5, 5, (2, 3, 2))
    k = np.fft.fftfreq(16)
    ramp = np.exp(-2j * np.pi * (k[:, None] * shifts[..., 0, None, None] + k[None, :] * shifts[..., 1, None, None]))
    expected = np.fft.ifft2(np.fft.fft2(images) * ramp)
    moved = fourier_shift(torch.from_numpy(images.astype(np.complex64)), torch.from_numpy(shifts.astype(np.float32)))
    np.testing.assert_allclose(moved.numpy(), expected, atol=2e-5)


def test_merge_group_of_consistent_patches_is_identity():
    # Four views of one band-limited, periodic object at their offsets: merging must not change them.
    size = 32
    yy, xx = torch.meshgrid(torch.arange(size * 2.0), torch.arange(size * 2.0), indexing="ij")
    obj = torch.polar(0.8 + 0.1 * torch.sin(2 * np.pi * 3 * yy / 64), 0.5 * torch.cos(2 * np.pi * 2 * xx / 64))
    offsets = torch.tensor([[[-2.0, -1.5], [2.0, -1.5], [-2.0, 1.5], [2.0, 1.5]]])
    centre = size // 2
    views = torch.stack([
        fourier_shift(obj[None], -off[None])[0, centre : centre + size, centre : centre + size] for off in offsets[0]
    ])[None]
    window = torch.from_numpy(stitch_window(size)).float()  # the probe_big window: the whole patch
    merged = merge_group(views, offsets, window)
    inner = (slice(None), slice(None), slice(12, 20), slice(12, 20))
    assert (merged[inner] - views[inner]).abs().max() < 1e-2
    # Inconsistent members are pulled towards each other.
    noisy = views.clone()
    noisy[0, 0] *= 1.2
    pulled = merge_group(noisy, offsets, window)
    assert (pulled[0, 1][12:20, 12:20] - views[0, 1][12:20, 12:20]).abs().max() > 1e-3
