"""The patch frame: extraction and stitching are inverses, and orientation errors are caught."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import synthetic_arrays
from ptychoreg.core.contract import load_npz
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.geometry import default_canvas_shape, extract_patches, patch_corners, stitch, stitch_window


def test_integer_positions_are_plain_crops():
    obj = np.arange(40 * 40).reshape(40, 40).astype(np.complex128)
    patches = extract_patches(obj, np.array([10.0, 20.0]), np.array([12.0, 25.0]), 8)
    np.testing.assert_allclose(patches[0], obj[6:14, 8:16], atol=1e-9)
    np.testing.assert_allclose(patches[1], obj[16:24, 21:29], atol=1e-9)


def test_subpixel_shift_samples_a_smooth_object_exactly():
    # A band-limited object (a plane wave periodic over the crop) is sampled exactly at any sub-pixel position.
    yy, xx = np.mgrid[:64, :64]
    wave = lambda y, x: np.exp(2j * np.pi * (3 * y + 5 * x) / 16)
    obj = wave(yy, xx)
    y, x = np.array([20.3]), np.array([30.7])
    patch = extract_patches(obj, y, x, 16)[0]
    iy, ix = np.mgrid[:16, :16]
    np.testing.assert_allclose(patch, wave(y[0] - 8 + iy, x[0] - 8 + ix), atol=1e-9)


def test_corners_and_fractions():
    corner, frac = patch_corners(np.array([33.25, 40.0]), 64)
    np.testing.assert_array_equal(corner, [1, 8])
    np.testing.assert_allclose(frac, [0.25, 0.0])


def test_stitching_truth_reproduces_object(synthetic):
    data = load_npz(synthetic(n=36, size=16))
    patches = extract_patches(data.object, data.ycoords, data.xcoords, 16).astype(np.complex64)
    stitched = stitch(patches, data.ycoords, data.xcoords, data.object.shape, trusted=8)
    assert stitched.mask.sum() > 100
    error = np.abs(stitched.object - data.object)[stitched.mask].max()
    assert error < 1e-5


def test_mirrored_or_transposed_stitching_is_detected(synthetic):
    """The check PtychoPINN lacked: flipping the patches or swapping the axes must break agreement."""
    data = load_npz(synthetic(n=36, size=16))
    patches = extract_patches(data.object, data.ycoords, data.xcoords, 16)
    truth_error = lambda p, y, x: np.abs(
        (s := stitch(p, y, x, data.object.shape, trusted=8)).object - data.object)[s.mask].max()
    assert truth_error(patches, data.ycoords, data.xcoords) < 1e-5
    assert truth_error(patches[:, ::-1, :], data.ycoords, data.xcoords) > 0.05  # mirrored patches
    assert truth_error(patches, data.xcoords, data.ycoords) > 0.05  # transposed positions


def test_mask_is_union_of_trusted_centres():
    patches = np.ones((1, 16, 16), dtype=np.complex64)
    stitched = stitch(patches, np.array([20.0]), np.array([30.0]), (50, 60), trusted=8)
    rows, cols = np.nonzero(stitched.mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 23, 26, 33)
    np.testing.assert_allclose(stitched.object[stitched.mask], 1, atol=1e-6)


def test_weights_positive_and_symmetric():
    w = stitch_window(8)
    assert (w > 0).all()
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w, w[::-1, ::-1])


def test_patch_outside_frame_is_refused():
    obj = np.ones((32, 32), dtype=np.complex128)
    with pytest.raises(PtychoError, match="outside the 32x32 object frame"):
        extract_patches(obj, np.array([5.0]), np.array([16.0]), 16)
    with pytest.raises(PtychoError, match="outside"):
        stitch(np.ones((1, 16, 16)), np.array([30.0]), np.array([16.0]), (32, 32), trusted=8)


def test_default_canvas_holds_every_patch():
    arrays = synthetic_arrays(n=16, size=16)
    shape = default_canvas_shape(arrays["ycoords"], arrays["xcoords"], 16)
    stitch(np.ones((16, 16, 16)), arrays["ycoords"], arrays["xcoords"], shape, trusted=16)
