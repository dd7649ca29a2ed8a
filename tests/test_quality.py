from __future__ import annotations

import pytest
import numpy as np

from ptychoreg.evaluation.quality import PSNR_CAP_DB, correlation, frc, quality_report, remove_global_phase, ssim


def _object(seed=0, shape=(64, 64)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    thickness = 0.5 + 0.3 * np.sin(yy / 4) * np.cos(xx / 5) + 0.05 * rng.standard_normal(shape)
    return np.exp(-thickness) * np.exp(-2j * thickness)


def test_truth_scores_perfectly_even_with_a_global_phase():
    truth = _object()
    mask = np.zeros(truth.shape, bool)
    mask[8:56, 8:56] = True
    report = quality_report(truth * np.exp(1j * 1.3), truth, mask)
    np.testing.assert_allclose(report["global_phase_offset_rad"], 1.3, atol=1e-9)
    for part in ("amplitude", "phase"):
        np.testing.assert_allclose(report[part]["correlation"], 1, atol=1e-9)
        np.testing.assert_allclose(report[part]["ssim"], 1, atol=1e-9)
        assert report[part]["psnr_db"] == PSNR_CAP_DB
    np.testing.assert_allclose(report["frc"]["mean"], 1, atol=1e-9)


def test_flat_object_is_the_baseline_and_scores_low():
    truth = _object()
    mask = np.ones(truth.shape, bool)
    flat = np.full(truth.shape, 0.6 + 0j)
    report = quality_report(flat, truth, mask)
    assert report["amplitude"]["correlation"] == 0.0
    assert report["amplitude"]["ssim"] < 0.2
    assert abs(report["frc"]["mean"]) < 0.05  # the region outline alone must not correlate
    assert report["baseline_flat"]["amplitude"]["correlation"] == 0.0


def test_noise_lowers_every_figure():
    truth = _object()
    mask = np.ones(truth.shape, bool)
    rng = np.random.default_rng(1)
    noisy = lambda s: truth + s * (rng.standard_normal(truth.shape) + 1j * rng.standard_normal(truth.shape))
    mild, strong = quality_report(noisy(0.02), truth, mask), quality_report(noisy(0.2), truth, mask)
    for part in ("amplitude", "phase"):
        for key in ("correlation", "ssim", "psnr_db"):
            assert strong[part][key] < mild[part][key]
    assert strong["frc"]["mean"] < mild["frc"]["mean"]


def test_phase_near_pi_does_not_wrap():
    truth = np.exp(1j * np.linspace(3.0, 3.3, 64 * 64).reshape(64, 64))  # crosses +pi
    report = quality_report(truth, truth, np.ones((64, 64), bool))
    np.testing.assert_allclose(report["phase"]["correlation"], 1, atol=1e-9)


def test_helpers():
    a = np.arange(10.0)
    assert correlation(a, 2 * a + 1) == 1.0 and correlation(a, np.ones(10)) == 0.0
    img = _object().real
    assert ssim(img, img, np.ones(img.shape, bool), 1.0) == 1.0
    freq, curve = frc(_object(), _object())
    assert freq[0] == 0 and np.allclose(curve, 1)
    aligned, offset = remove_global_phase(np.exp(1j * 0.5) * np.ones((4, 4)), np.ones((4, 4)), np.ones((4, 4), bool))
    np.testing.assert_allclose(aligned, 1)


def test_ssim_is_scikit_image_over_the_whole_windows_inside_the_region():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    truth = rng.random((40, 50))
    pred = truth + 0.2 * rng.standard_normal(truth.shape)
    full = np.ones(truth.shape, bool)
    # Whole image: scikit-image's own mean (it also drops the 3-pixel border its windows overhang).
    assert ssim(pred, truth, full, 1.0) == pytest.approx(structural_similarity(pred, truth, data_range=1.0), abs=1e-12)
    # A region: only windows wholly inside it count, so what lies outside cannot change the figure.
    mask = np.zeros(truth.shape, bool)
    mask[5:30, 8:40] = True
    outside_changed = np.where(mask, pred, 0.0)
    assert ssim(outside_changed, truth, mask, 1.0) == pytest.approx(ssim(pred, truth, mask, 1.0), abs=1e-12)
    assert ssim(pred, truth, mask, 1.0) == pytest.approx(
        structural_similarity(pred[5:30, 8:40], truth[5:30, 8:40], data_range=1.0), abs=1e-12)


def test_the_quality_refinement_extends_the_pretrain_recipe():
    """The stage's two training recipes: the refinement differs from the pretrain only in gridsize, epochs
    and rate (the width must match, since it starts from the pretrain's weights)."""
    from conftest import ROOT
    from ptychoreg.harness.runner import QUALITY_PHASES, RecipeRun

    first, second = (RecipeRun.of(str(ROOT / "params.yaml"), name).config.model_dump() for name in QUALITY_PHASES)
    changed = {(section, key) for section in first for key in first[section] if first[section][key] != second[section][key]}
    assert changed == {("model", "gridsize"), ("train", "max_epochs"), ("train", "learning_rate")}
    assert (first["model"]["gridsize"], second["model"]["gridsize"]) == (1, 2)


@pytest.mark.slow
def test_the_quality_gate_fails_below_either_floor_and_keeps_the_outputs(fixture_path, tmp_path):
    """One epoch per phase of a tiny recipe: each part's floor is its own check, a failure names the
    checks and the figures in one line, and the outputs stay in <out>.failed for a look."""
    from ptychoreg.core.config import QualitySettings
    from ptychoreg.core.errors import PtychoError
    from ptychoreg.harness.quality import score_quality
    from ptychoreg.harness.runner import RecipeRun, train_phases

    params = tmp_path / "params.yaml"
    params.write_text("recipes:\n  tiny: {model: {width: 4, heads: shared, upsampling: subpixel}, train: {max_epochs: 1}}\n"
                      "  tiny_refine: {extends: tiny, model: {gridsize: 2}}\n")
    runs = [RecipeRun.of(str(params), name) for name in ("tiny", "tiny_refine")]
    phases = [folder for folder, _ in train_phases(str(fixture_path), tmp_path / "runs", runs)]
    no_floor = QualitySettings(min_amplitude_ssim=0.0, min_phase_ssim=0.0, enforce=False)
    metrics, _ = score_quality(str(fixture_path), phases, no_floor, tmp_path / "look", log=lambda _: None)
    amplitude, phase = metrics["quality"]["amplitude"]["ssim"], metrics["quality"]["phase"]["ssim"]
    assert metrics["checks"]["amplitude_ssim_above_floor"] and metrics["checks"]["phase_ssim_above_floor"]
    phase_floor = round(phase + 0.01, 3)
    metrics, _ = score_quality(str(fixture_path), phases, QualitySettings(min_amplitude_ssim=0.0, min_phase_ssim=phase_floor,
                                                                          enforce=False), tmp_path / "look", log=lambda _: None)
    assert metrics["checks"]["amplitude_ssim_above_floor"] and not metrics["checks"]["phase_ssim_above_floor"]
    with pytest.raises(PtychoError, match=rf"quality too low: (\w+, )*phase_ssim_above_floor.* \(amplitude SSIM "
                                          rf"{amplitude:.3f} >= 0.0, phase SSIM {phase:.3f} < {phase_floor}\); outputs kept"):
        score_quality(str(fixture_path), phases, QualitySettings(min_amplitude_ssim=0.0, min_phase_ssim=phase_floor,
                                                                 enforce=True), tmp_path / "low", log=lambda _: None)
    assert (tmp_path / "low.failed" / "reconstruction.npz").is_file() and not (tmp_path / "low").exists()
