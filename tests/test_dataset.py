from __future__ import annotations

import json

import numpy as np
import torch

from ptychoreg.core.contract import load_npz
from ptychoreg.core.dataset import batches, group_tensors, intensity_scale, normalisation_factor, target_energy
from ptychoreg.core.grouping import make_groups


def test_tensors_are_float32_even_from_float64(synthetic):
    data = load_npz(synthetic())
    assert data.diffraction.dtype == np.float64
    groups = make_groups(data.ycoords, data.xcoords, 2, 10, seed=0)
    tensors = group_tensors(data.diffraction, groups, 2.0)
    assert tensors.inputs.dtype == tensors.measured.dtype == tensors.offsets.dtype == torch.float32
    assert tensors.inputs.shape == (10, 4, 16, 16)
    np.testing.assert_allclose(tensors.measured[3, 2].numpy(), data.diffraction[groups.indices[3, 2]], rtol=1e-6)
    np.testing.assert_allclose(tensors.inputs.numpy(), 2.0 * tensors.measured.numpy(), rtol=1e-6)


def test_normalisation_brings_mean_energy_to_target(synthetic):
    data = load_npz(synthetic())
    factor = normalisation_factor(data.diffraction)
    energy = ((data.diffraction * factor) ** 2).sum(axis=(1, 2)).mean()
    np.testing.assert_allclose(energy, target_energy(16), rtol=1e-9)


def test_intensity_scale_from_metadata_or_estimated(synthetic):
    data = load_npz(synthetic())
    scale = intensity_scale(data)
    assert scale.source == "metadata nphotons"
    np.testing.assert_allclose(scale.value, 1000 / 8)  # sqrt(1e6) / (N/2)
    # Without metadata: integer counts stored as amplitude -> the smallest non-zero amplitude is one photon.
    counts = np.random.default_rng(0).poisson(50, size=(24, 16, 16)).astype(np.float64)
    counts[0, 0, 0] = 1
    estimated = intensity_scale(load_npz(synthetic("b.npz", diffraction=np.sqrt(counts) / 7.0, metadata=np.array(json.dumps({})))))
    assert "estimated" in estimated.source
    np.testing.assert_allclose(estimated.value, 7.0)


def test_canonical_intensity_scale(fixture_path):
    np.testing.assert_allclose(intensity_scale(load_npz(fixture_path)).value, 31.25)


def test_batches_cover_everything_once_in_seeded_order(synthetic):
    data = load_npz(synthetic())
    tensors = group_tensors(data.diffraction, make_groups(data.ycoords, data.xcoords, 1, None), 1.0)
    first = [b.measured for b in batches(tensors, 5, torch.Generator().manual_seed(1))]
    again = [b.measured for b in batches(tensors, 5, torch.Generator().manual_seed(1))]
    assert sum(len(b) for b in first) == 24
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    ordered = torch.cat([b.measured for b in batches(tensors, 5)])
    assert torch.equal(ordered, tensors.measured)
