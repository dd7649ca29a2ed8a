"""The classical reference (ePIE with the known probe and positions): it must reconstruct the canonical
object as well as pty-chi's LSQML does (SSIM >= 0.95), or it is no reference."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CANONICAL
from ptychoreg.core.contract import load_npz
from ptychoreg.evaluation.quality import quality_report
from ptychoreg.evaluation.reference import epie, scanned_region


def test_epie_fits_noiseless_synthetic_data(synthetic):
    """On patterns simulated from a known object with the project's own forward model, ePIE drives the
    amplitude error towards zero."""
    data = load_npz(synthetic(n=24, size=16))
    result = epie(data, epochs=40, seed=0, log=lambda _: None)
    errors = [h["amplitude_error"] for h in result.history]
    assert errors[-1] < 0.25 * errors[0]
    assert result.object.shape == data.object.shape and result.object.dtype == np.complex64
    mask = scanned_region(data, data.object.shape)
    assert 0 < mask.sum() < mask.size
    report = quality_report(result.object, data.object, mask)
    assert report["amplitude"]["ssim"] > 0.9 and report["phase"]["ssim"] > 0.9, report  # 0.945 / 0.983 measured


@pytest.mark.slow
def test_epie_reaches_the_field_standard_on_the_canonical_data():
    data = load_npz(CANONICAL)
    result = epie(data, epochs=30, seed=0, log=lambda _: None)
    mask = scanned_region(data, data.object.shape)
    report = quality_report(result.object, data.object, mask)
    assert report["amplitude"]["ssim"] >= 0.95 and report["phase"]["ssim"] >= 0.95, (
        report["amplitude"]["ssim"], report["phase"]["ssim"])
