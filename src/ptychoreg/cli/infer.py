"""ptycho-infer: reconstruct the object from diffraction with a trained model bundle.

Outputs in --output-dir: reconstruction.npz (complex object, scanned-region mask, stitched positions),
amplitude.png, phase.png, summary.json, and quality.json when the data holds the true object.
"""

from __future__ import annotations

import argparse
import sys
import time

from ptychoreg.cli._common import add_params_arg, entry_points, hide_cuda_unless, load_params, log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-infer", description=__doc__)
    p.add_argument("--model", required=True, help="model bundle written by ptycho-train (model.pt)")
    p.add_argument("--data", required=True, help="dataset to reconstruct (.npz, data contract)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--layout", choices=("NHW", "HWN"), help="diffraction layout, overriding detection")
    add_params_arg(p)
    p.add_argument("--n-groups", "--n_groups", "--n-images", "--n_images", dest="n_groups", type=int,
                   help="positions to reconstruct, first in scan order (default: all)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--accelerator", choices=("cpu", "cuda", "auto"))
    return p


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    hide_cuda_unless(args.accelerator)
    started = time.perf_counter()

    from pathlib import Path

    import numpy as np

    from ptychoreg.config import build_config
    from ptychoreg.contract import load_npz

    params, params_source = load_params(args.params)
    keys = ("n_groups", "batch_size", "threads", "accelerator")
    config = build_config(params, {"infer": {k: getattr(args, k) for k in keys}}, where=params_source).infer
    data = load_npz(args.data, layout=args.layout)

    # torch only now: bad parameters and bad data are refused in a fraction of a second.
    from ptychoreg.fileio import sha256_array, write_json, write_npz
    from ptychoreg.inference import reconstruct
    from ptychoreg.model.bundle import load_bundle
    from ptychoreg.plots import object_panels_png
    from ptychoreg.quality import quality_report, remove_global_phase
    from ptychoreg.training import configure_runtime, select_device

    device = select_device(config.accelerator)
    configure_runtime(0, config.threads, device)
    bundle = load_bundle(args.model, device)
    result = reconstruct(bundle, data, n_groups=config.n_groups, batch_size=config.batch_size)
    obj, mask = result.stitched.object, result.stitched.mask

    out = Path(args.output_dir)
    write_npz(out / "reconstruction.npz", {"object": obj, "mask": mask, "positions": result.positions})
    summary = {
        "model": str(args.model),
        "data": str(args.data),
        "positions": int(len(result.positions)),
        "object_shape": list(obj.shape),
        "scanned_fraction": float(mask.mean()),
        "stitched_sha256": sha256_array(obj),
        "device": str(device),
    }
    amplitude, phase = np.abs(obj), np.angle(obj)
    if data.object is not None:
        quality = quality_report(obj, data.object, mask)
        write_json(out / "quality.json", quality)
        aligned, _ = remove_global_phase(obj.astype(np.complex128), data.object, mask)
        phase = np.angle(aligned)
        truth_amp, truth_phase = np.abs(data.object), np.angle(data.object)
        amp_panels = [("reconstruction amplitude", amplitude), ("true amplitude", truth_amp)]
        phase_panels = [("reconstruction phase (offset removed)", phase), ("true phase", truth_phase)]
        amp_range = (float(truth_amp[mask].min()), float(truth_amp[mask].max()))
        phase_range = (float(truth_phase[mask].min()), float(truth_phase[mask].max()))
        log(f"quality: amplitude corr {quality['amplitude']['correlation']:.4f} ssim {quality['amplitude']['ssim']:.4f}; "
            f"phase corr {quality['phase']['correlation']:.4f} ssim {quality['phase']['ssim']:.4f} "
            f"(flat baseline ssim {quality['baseline_flat']['amplitude']['ssim']:.4f} / "
            f"{quality['baseline_flat']['phase']['ssim']:.4f})")
    else:
        amp_panels, phase_panels = [("reconstruction amplitude", amplitude)], [("reconstruction phase", phase)]
        amp_range = (float(amplitude[mask].min()), float(amplitude[mask].max()))
        phase_range = (float(phase[mask].min()), float(phase[mask].max()))
    object_panels_png(out / "amplitude.png", amp_panels, mask, *amp_range)
    object_panels_png(out / "phase.png", phase_panels, mask, *phase_range, colourmap="viridis")
    summary["seconds"] = time.perf_counter() - started
    write_json(out / "summary.json", summary)
    log(f"reconstructed {summary['positions']} positions onto {obj.shape[0]}x{obj.shape[1]} "
        f"({100 * summary['scanned_fraction']:.1f}% scanned), sha256 {summary['stitched_sha256'][:16]}..., "
        f"wrote {out} in {summary['seconds']:.2f} s")
    return 0


main, cli = entry_points("ptycho-infer", _main)


if __name__ == "__main__":
    cli()
