"""ptycho-infer: reconstruct the object from diffraction with a trained model bundle.

Outputs in --output-dir: reconstruction.npz (complex object, scanned-region mask, stitched positions),
summary.json, and quality.json when the data holds the true object. `ptycho-plots --run-dir` draws them.
"""

from __future__ import annotations

import argparse
import time

from ptychoreg.cli._common import add_params_arg, entry_points, hide_cuda_unless, load_params, log
from ptychoreg.config import add_section_flags
from ptychoreg.steps import Phases


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-infer", description=__doc__)
    p.add_argument("--model", required=True, help="model bundle written by ptycho-train (model.pt)")
    p.add_argument("--data", required=True, help="dataset to reconstruct (.npz, data contract)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--layout", choices=("NHW", "HWN"), help="diffraction layout, overriding detection")
    p.add_argument("--timings-out", help="write the wall seconds of the run's phases here (JSON); "
                                         "never into --output-dir, whose files are the same bytes on every run")
    add_params_arg(p)
    add_section_flags(p, "infer")
    return p


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    hide_cuda_unless(args.accelerator)
    started = time.perf_counter()
    phases = Phases()

    from dataclasses import fields
    from pathlib import Path

    from ptychoreg.config import InferConfig, load_section
    from ptychoreg.contract import load_npz

    params, params_source = load_params(args.params)
    config = load_section("infer", params, params_source, {f.name: getattr(args, f.name) for f in fields(InferConfig)})
    data = load_npz(args.data, layout=args.layout)
    phases.done("settings and data")

    # torch only now: bad parameters and bad data are refused in a fraction of a second.
    from ptychoreg.inference import reconstruct, save_reconstruction
    from ptychoreg.model.bundle import load_bundle
    from ptychoreg.training import configure_runtime, select_device

    phases.done("imports (torch, ours)")
    device = select_device(config.accelerator)
    configure_runtime(0, config.threads, device, deterministic=False)
    bundle = load_bundle(args.model, device)
    result = reconstruct(bundle, data, n_groups=config.n_groups, batch_size=config.batch_size, gridsize=config.gridsize)
    phases.done("inference and stitching")
    out = Path(args.output_dir)
    from ptychoreg.fileio import path_from

    # The model as seen from the output folder: the same bytes wherever the run was staged.
    summary = save_reconstruction(out, result, data, {"model": path_from(out, args.model), "data": str(args.data),
                                                      "device": str(device)})
    phases.done("quality figures and writing")
    if "quality" in summary:
        q, flat = summary["quality"], summary["quality"]["baseline_flat"]
        log(f"quality: amplitude corr {q['amplitude']['correlation']:.4f} ssim {q['amplitude']['ssim']:.4f}; "
            f"phase corr {q['phase']['correlation']:.4f} ssim {q['phase']['ssim']:.4f} "
            f"(flat baseline ssim {flat['amplitude']['ssim']:.4f} / {flat['phase']['ssim']:.4f})")
    shape = summary["object_shape"]
    log(f"reconstructed {summary['positions']} positions onto {shape[0]}x{shape[1]} "
        f"({100 * summary['scanned_fraction']:.1f}% scanned), sha256 {summary['stitched_sha256'][:16]}..., "
        f"wrote {out} in {time.perf_counter() - started:.2f} s")
    phases.write(args.timings_out)
    return 0


main, cli = entry_points("ptycho-infer", _main)


if __name__ == "__main__":
    cli()
