"""ptycho-infer: reconstruct the object from diffraction with a trained model bundle.

Outputs in --output-dir: reconstruction.npz (complex object, scanned-region mask, stitched positions),
summary.json, and quality.json when the data holds the true object. `ptycho-plots --run-dir` draws them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ptychoreg.core.cli import ArgumentParser, add_recipe_args, entry_points, hide_cuda_unless, log, run_config
from ptychoreg.core.config import add_section_flags
from ptychoreg.core.phases import Phases


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-infer", description=__doc__)
    p.add_argument("--model", required=True, help="model bundle written by ptycho-train (model.pt)")
    p.add_argument("--data", required=True, help="dataset to reconstruct (.npz, data contract)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--layout", choices=("NHW", "HWN"), help="diffraction layout, overriding detection")
    p.add_argument("--timings-out", help="write the wall seconds of the run's phases here (JSON); "
                                         "never into --output-dir, whose files are the same bytes on every run")
    add_recipe_args(p)
    add_section_flags(p, "infer")
    return p


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    started = time.perf_counter()
    phases = Phases()

    from ptychoreg.core.contract import load_npz
    from ptychoreg.core.fileio import staged_outputs

    config = run_config(args, ("infer",)).infer
    hide_cuda_unless(config.accelerator)
    data = load_npz(args.data, layout=args.layout)
    phases.done("settings and data")

    # torch only now: bad parameters and bad data are refused in a fraction of a second.
    from ptychoreg.core.inference import OUTPUT_FILES, infer_to
    from ptychoreg.evaluation.quality import quality_report

    phases.done("imports (torch, ours)")
    out = Path(args.output_dir)
    with staged_outputs(out, OUTPUT_FILES, inputs=[args.model, args.data, args.params],
                        files=[args.timings_out]) as staged:
        timings = args.timings_out and staged.file(args.timings_out)
        summary = infer_to(staged.folder, args.model, data, config, seen_from=out, score=quality_report)
        phases.done("inference, stitching, figures and writing")
        phases.write(timings)
    if "quality" in summary:
        q, flat = summary["quality"], summary["quality"]["baseline_flat"]
        log(f"quality: amplitude corr {q['amplitude']['correlation']:.4f} ssim {q['amplitude']['ssim']:.4f}; "
            f"phase corr {q['phase']['correlation']:.4f} ssim {q['phase']['ssim']:.4f} "
            f"(flat baseline ssim {flat['amplitude']['ssim']:.4f} / {flat['phase']['ssim']:.4f})")
    shape = summary["object_shape"]
    log(f"reconstructed {summary['positions']} positions onto {shape[0]}x{shape[1]} "
        f"({100 * summary['scanned_fraction']:.1f}% scanned), sha256 {summary['stitched_sha256'][:16]}..., "
        f"wrote {out} in {time.perf_counter() - started:.2f} s")
    return 0


main, cli = entry_points("ptycho-infer", _main)


if __name__ == "__main__":
    cli()
