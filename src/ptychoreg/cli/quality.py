"""ptycho-quality: train on the whole dataset for a real budget and check the reconstruction clearly
beats a flat object (the `quality` stage). Writes --metrics-out; the plots stage draws its figures."""

from __future__ import annotations

import argparse

from ptychoreg.cli._common import add_params_arg, entry_points, load_params, log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-quality", description=__doc__)
    p.add_argument("--data", required=True, help="dataset with ground truth (the canonical file)")
    p.add_argument("--out-dir", default="outputs/quality", help="the trained model and its reconstruction")
    p.add_argument("--metrics-out", default="metrics/quality.json",
                   help="settings, losses and quality figures: the same bytes on every pinned machine")
    p.add_argument("--timing-out", default="metrics/quality_timing.json",
                   help="this machine's wall seconds and peak memory of each phase")
    add_params_arg(p)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from pathlib import Path

    from ptychoreg.fileio import write_json
    from ptychoreg.harness.quality import run_quality
    from ptychoreg.config import QualitySettings

    params, source = load_params(args.params)
    settings = QualitySettings.from_params(params.get("quality"), where=source)
    out = Path(args.out_dir)
    metrics, timing = run_quality(args.data, settings, out, params_path=args.params, log=log)
    write_json(args.metrics_out, metrics)
    write_json(args.timing_out, timing)
    q, b = metrics["quality"], metrics["baseline_flat"]
    log(f"quality: amplitude corr {q['amplitude']['correlation']:.3f} ssim {q['amplitude']['ssim']:.3f} "
        f"(flat {b['amplitude']['ssim']:.3f}); phase corr {q['phase']['correlation']:.3f} ssim {q['phase']['ssim']:.3f} "
        f"(flat {b['phase']['ssim']:.3f}); {timing['train_s']:.0f} s of training")
    return 0


main, cli = entry_points("ptycho-quality", _main)


if __name__ == "__main__":
    cli()
