"""The data contract: each rule, each refusal, and the layout decision. Synthetic arrays only."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from conftest import save_npz, synthetic_arrays
from ptychoreg.core.contract import central_energy_fraction, detect_layout, load_npz
from ptychoreg.core.errors import PtychoError


def refused(path, *fragments, layout=None):
    with pytest.raises(PtychoError) as info:
        load_npz(path, layout=layout)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_canonical_layout_loads_unchanged(synthetic):
    arrays = synthetic_arrays(n=24, size=16)
    data = load_npz(synthetic(n=24, size=16))
    assert data.layout.layout == "NHW"
    assert data.diffraction.shape == (24, 16, 16)
    assert data.diffraction.dtype == np.float64  # the contract orients; conversions belong to consumers
    np.testing.assert_array_equal(data.diffraction, arrays["diffraction"])
    assert data.metadata["nphotons"] == 1e6
    np.testing.assert_array_equal(data.xcoords_start, data.xcoords)  # defaults to the measured positions


def test_legacy_layout_is_reoriented(synthetic):
    canonical = load_npz(synthetic("a.npz", n=24, size=16, layout="NHW"))
    legacy = load_npz(synthetic("b.npz", n=24, size=16, layout="HWN"))
    assert legacy.layout.layout == "HWN"
    assert "axis 2 has length 24" in legacy.layout.evidence
    assert legacy.diffraction.flags.c_contiguous
    np.testing.assert_array_equal(legacy.diffraction, canonical.diffraction)


def test_ambiguous_layout_decided_by_far_field_centre(synthetic):
    # N == H == W: 16 patterns of 16 x 16, in both layouts.
    nhw = load_npz(synthetic("a.npz", n=16, size=16, layout="NHW"))
    hwn = load_npz(synthetic("b.npz", n=16, size=16, layout="HWN"))
    assert nhw.layout.layout == "NHW" and "ambiguous" in nhw.layout.evidence
    assert hwn.layout.layout == "HWN" and "ambiguous" in hwn.layout.evidence
    np.testing.assert_array_equal(nhw.diffraction, hwn.diffraction)


def test_ambiguous_layout_without_evidence_is_refused(tmp_path):
    arrays = synthetic_arrays(n=16, size=16)
    arrays["diffraction"] = np.ones((16, 16, 16))  # flat on every axis: nothing to decide by
    path = save_npz(tmp_path / "flat.npz", arrays)
    refused(path, "key 'diffraction'", "ambiguous layout", "--layout")
    assert load_npz(path, layout="HWN").layout.evidence == "explicit layout override"


def test_explicit_layout_wins_and_must_fit(synthetic):
    path = synthetic(n=16, size=16, layout="NHW")
    assert load_npz(path, layout="NHW").layout.layout == "NHW"
    with_legacy = synthetic("legacy.npz", n=24, size=16, layout="HWN")
    refused(with_legacy, "layout override NHW does not fit", layout="NHW")


def test_layout_evidence_statistic():
    arrays = synthetic_arrays(n=24, size=16)
    fractions = [central_energy_fraction(arrays["diffraction"], axis) for axis in range(3)]
    assert fractions[1] > 0.75 and fractions[2] > 0.75
    assert fractions[0] < 0.65


@pytest.mark.parametrize("key", ["diffraction", "probeGuess", "xcoords", "ycoords"])
def test_missing_required_key(synthetic, key):
    refused(synthetic(**{key: None}), f"key '{key}'", "required key missing")


def test_diff3d_is_read_as_diffraction(synthetic, tmp_path):
    arrays = synthetic_arrays()
    arrays["diff3d"] = arrays.pop("diffraction")
    data = load_npz(save_npz(tmp_path / "legacy_name.npz", arrays))
    np.testing.assert_array_equal(data.diffraction, arrays["diff3d"])


def test_diff3d_must_equal_diffraction(tmp_path):
    arrays = synthetic_arrays()
    arrays["diff3d"] = arrays["diffraction"] * 1.01
    refused(save_npz(tmp_path / "x.npz", arrays), "key 'diff3d'", "differs")


@pytest.mark.parametrize("shape", [(24, 256), (24, 16, 16, 1), (384,)])
def test_wrong_ndim(synthetic, shape):
    bad = np.ones(shape)
    refused(synthetic(diffraction=bad), "key 'diffraction'", "expected 3 dimensions")


def test_frames_not_matching_probe(synthetic):
    refused(synthetic(diffraction=np.ones((24, 8, 8))), "key 'diffraction'", "do not match the 16x16 probe")


def test_coordinate_length_mismatch(synthetic):
    arrays = synthetic_arrays(n=24)
    refused(synthetic(ycoords=arrays["ycoords"][:20]), "key 'ycoords'", "has 20 entries but xcoords has 24")
    refused(synthetic("b.npz", xcoords=arrays["xcoords"][:20], ycoords=arrays["ycoords"][:20]),
            "key 'diffraction'", "no axis", "length 20")


@pytest.mark.parametrize("value,problem", [(np.nan, "NaN"), (np.inf, "Inf")])
def test_nan_and_inf(synthetic, value, problem):
    arrays = synthetic_arrays()
    bad = arrays["diffraction"].copy()
    bad[3, 4, 5] = value
    refused(synthetic(diffraction=bad), "key 'diffraction'", f"1 {problem}")


def test_nan_coordinates(synthetic):
    x = synthetic_arrays()["xcoords"].copy()
    x[0] = np.nan
    refused(synthetic(xcoords=x), "key 'xcoords'", "NaN")


def test_negative_amplitude(synthetic):
    bad = synthetic_arrays()["diffraction"].copy()
    bad[0, 0, 0] = -0.5
    refused(synthetic(diffraction=bad), "key 'diffraction'", "negative amplitude")


def test_integer_counts_refused(synthetic):
    counts = np.round(synthetic_arrays()["diffraction"] ** 2).astype(np.int32)
    refused(synthetic(diffraction=counts), "key 'diffraction'", "integer int32")


def test_complex_diffraction_refused(synthetic):
    refused(synthetic(diffraction=synthetic_arrays()["diffraction"].astype(np.complex64)), "key 'diffraction'",
            "complex values; expected real")


def test_probe_without_energy_refused(synthetic):
    refused(synthetic(probeGuess=np.zeros((16, 16), np.complex64)), "key 'probeGuess'", "no signal: every probe is all zeros")
    huge = np.full((16, 16), 1e200 + 0j, np.complex128)
    refused(synthetic(probeGuess=huge), "key 'probeGuess'", "energy (sum of squares) is not finite")


def test_patterns_without_signal_refused(synthetic):
    zeros = np.zeros_like(synthetic_arrays()["diffraction"])
    refused(synthetic(diffraction=zeros), "key 'diffraction'", "no signal: every pattern is all zeros")
    some = synthetic_arrays()["diffraction"].copy()
    some[[3, 7]] = 0
    refused(synthetic(diffraction=some), "key 'diffraction'", "no signal in 2 of", "first: index 3")
    overflowing = synthetic_arrays()["diffraction"].astype(np.float64)
    overflowing[5] = 1e200  # finite values whose squares overflow even in float64
    refused(synthetic(diffraction=overflowing), "key 'diffraction'", "energy (sum of squares) is not finite")


def test_real_probe_refused(synthetic):
    refused(synthetic(probeGuess=np.ones((16, 16))), "key 'probeGuess'", "expected complex")


def test_pickled_object_array_refused(synthetic, tmp_path):
    arrays = synthetic_arrays()
    arrays["extra"] = np.array([{"a": 1}, None], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)  # np.savez pickles object arrays
    refused(path, "key 'extra'", "pickled object array")


def test_pickle_file_refused(tmp_path):
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"diffraction": [1, 2, 3]}))
    refused(path, "is a Python pickle; refused")


def test_truncated_file_refused(synthetic):
    path = synthetic()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(path, "not a readable .npz archive")


def test_not_a_zip_refused(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("diffraction,probe\n1,2\n")
    refused(path, "not a readable .npz archive")


def test_empty_file_and_directory_and_missing(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    refused(empty, "empty file")
    refused(tmp_path, "is a directory")
    refused(tmp_path / "nope.npz", "file not found")


def test_single_npy_refused(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.ones(3))
    refused(path, "single .npy array")


def test_metadata_must_be_json_object(synthetic):
    refused(synthetic(metadata=np.array("{not json")), "key 'metadata'", "not valid JSON")
    refused(synthetic("b.npz", metadata=np.array(3.0)), "key 'metadata'", "unicode JSON string")


def test_unknown_keys_carried(synthetic):
    data = load_npz(synthetic(notes=np.array([1, 2, 3])))
    np.testing.assert_array_equal(data.extras["notes"], [1, 2, 3])


def test_ground_truth_patches_shape_checked(synthetic):
    refused(synthetic(Y=np.ones((3, 16, 16), dtype=np.complex64)), "key 'Y'", "expected (24, 16, 16)")


def test_detect_layout_messages():
    with pytest.raises(PtychoError, match="do not match the 64x64 probe"):
        detect_layout((10, 32, 32), 10, (64, 64))
    with pytest.raises(PtychoError, match="coordinate length mismatch"):
        detect_layout((10, 64, 64), 12, (64, 64))
    assert detect_layout((64, 64, 1087), 1087, (64, 64)).layout == "HWN"
    assert detect_layout((1087, 64, 64), 1087, (64, 64)).layout == "NHW"


def test_metadata_parsed(synthetic):
    meta = {"nphotons": 5.0, "units": {"x": "px"}}
    assert load_npz(synthetic(metadata=np.array(json.dumps(meta)))).metadata == meta
