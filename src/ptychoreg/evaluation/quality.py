"""Reconstruction quality against ground truth, over the scanned region, after removing the global phase.

Figures: Pearson correlation, PSNR and SSIM of amplitude and of phase, and the Fourier ring correlation
of the complex object. The same figures for a flat object (the trivial baseline a collapsed network
produces) go alongside, so "better than flat" is a number, not an impression.
"""

from __future__ import annotations

import numpy as np

SSIM_WINDOW = 7  # scikit-image's default (Wang et al. 2004)


def remove_global_phase(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotate `pred` by the one phase that best aligns it with `truth` over `mask`."""
    offset = float(np.angle(np.sum(pred[mask] * np.conj(truth[mask]))))
    return pred * np.exp(-1j * offset), offset


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant (a flat object correlates with nothing)."""
    if min(np.ptp(a), np.ptp(b)) <= 1e-9 * max(1.0, float(np.abs(a).max()), float(np.abs(b).max())):
        return 0.0
    a = a - a.mean()
    b = b - b.mean()
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


PSNR_CAP_DB = 100.0  # identical images would score infinity, which JSON cannot hold


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((pred - truth) ** 2))
    if mse == 0:
        return PSNR_CAP_DB
    return float(min(10 * np.log10(data_range**2 / mse), PSNR_CAP_DB))


def ssim(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, data_range: float) -> float:
    """scikit-image's structural_similarity (its defaults: 7x7 uniform window, K1 0.01, K2 0.03, sample
    covariance), averaged over the pixels whose whole window lies inside `mask`."""
    # Loaded on first use (a measurable part of start-up): commands that only read these figures never pay it.
    from scipy.ndimage import binary_erosion
    from skimage.metrics import structural_similarity

    _, ssim_map = structural_similarity(pred, truth, data_range=data_range, win_size=SSIM_WINDOW, full=True)
    inside = binary_erosion(mask, np.ones((SSIM_WINDOW, SSIM_WINDOW), bool), border_value=0)
    return float(ssim_map[inside].mean()) if inside.any() else float("nan")


def frc(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two complex images: (spatial frequency in cycles/px, FRC)."""
    fp, ft = np.fft.fftshift(np.fft.fft2(pred)), np.fft.fftshift(np.fft.fft2(truth))
    rows, cols = pred.shape
    ky = np.fft.fftshift(np.fft.fftfreq(rows))[:, None]
    kx = np.fft.fftshift(np.fft.fftfreq(cols))[None, :]
    step = 1.0 / min(rows, cols)
    ring = np.rint(np.sqrt(ky**2 + kx**2) / step).astype(int).ravel()
    n_rings = min(rows, cols) // 2
    keep = ring < n_rings
    ring = ring[keep]
    cross = np.bincount(ring, (fp * np.conj(ft)).ravel()[keep].real, n_rings)
    power_p = np.bincount(ring, (np.abs(fp) ** 2).ravel()[keep], n_rings)
    power_t = np.bincount(ring, (np.abs(ft) ** 2).ravel()[keep], n_rings)
    denom = np.sqrt(power_p * power_t)
    curve = np.divide(cross, denom, out=np.zeros(n_rings), where=denom > 0)
    return np.arange(n_rings) * step, curve


def _figures(amp_p, amp_t, ph_p, ph_t, mask) -> dict:
    amp_range = float(np.ptp(amp_t[mask])) or 1.0
    ph_range = float(np.ptp(ph_t[mask])) or 1.0
    return {
        "amplitude": {
            "correlation": correlation(amp_p[mask], amp_t[mask]),
            "psnr_db": psnr(amp_p[mask], amp_t[mask], amp_range),
            "ssim": ssim(amp_p, amp_t, mask, amp_range),
        },
        "phase": {
            "correlation": correlation(ph_p[mask], ph_t[mask]),
            "psnr_db": psnr(ph_p[mask], ph_t[mask], ph_range),
            "ssim": ssim(ph_p, ph_t, mask, ph_range),
        },
    }


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def quality_report(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict:
    """All figures of `pred` against `truth` over `mask`, with the flat-object baseline beside them."""
    if pred.shape != truth.shape or mask.shape != truth.shape:
        raise ValueError(f"shapes differ: prediction {pred.shape}, truth {truth.shape}, mask {mask.shape}")
    if not mask.any():
        raise ValueError("empty scanned region")
    pred = pred.astype(np.complex128)
    truth = truth.astype(np.complex128)
    aligned, offset = remove_global_phase(pred, truth, mask)
    amp_t, ph_t = np.abs(truth), np.angle(truth)
    # Phase relative to the truth's own phase: immune to wrapping at +-pi.
    ph_p = ph_t + np.angle(aligned * np.conj(truth))
    report = _figures(np.abs(aligned), amp_t, ph_p, ph_t, mask)

    # FRC of the mean-removed objects inside the region: otherwise the shared region outline alone
    # correlates, and even a flat object would score high.
    box = _bounding_box(mask)
    centred = lambda image: np.where(mask, image - image[mask].mean(), 0)[box]
    freq, curve = frc(centred(aligned), centred(truth))
    below = np.flatnonzero(curve[1:] < 0.5)
    report["frc"] = {
        "mean": float(curve[1:].mean()),
        "half_cutoff_cycles_per_px": float(freq[1:][below[0]]) if below.size else float(freq[-1]),
    }
    flat = np.full_like(amp_t, amp_t[mask].mean())
    report["baseline_flat"] = _figures(flat, amp_t, np.full_like(ph_t, ph_t[mask].mean()), ph_t, mask)
    report["global_phase_offset_rad"] = offset
    report["region_pixels"] = int(mask.sum())
    return report


HEADLINE_FIGURES = ("correlation", "ssim", "psnr_db")


def headline(report: dict) -> dict:
    """The figures metrics/ records from a `quality_report`: per part correlation, SSIM and PSNR plus
    the FRC mean, and the same figures of the flat-object baseline."""
    parts = ("amplitude", "phase")
    quality = {part: {k: report[part][k] for k in HEADLINE_FIGURES} for part in parts}
    quality["frc_mean"] = report["frc"]["mean"]
    baseline = {part: {k: report["baseline_flat"][part][k] for k in HEADLINE_FIGURES} for part in parts}
    return {"quality": quality, "baseline_flat": baseline}
