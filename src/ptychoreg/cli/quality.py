"""ptycho-quality: score the quality stage's model on the whole dataset and check that the reconstruction
clearly beats a flat object (the `quality` stage, after quality_pretrain and quality_refine). Writes
--metrics-out and --timing-out; the plots stage draws its figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, add_params_arg, entry_points, load_params, log
from ptychoreg.core.config import load_section
from ptychoreg.core.errors import PtychoError


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-quality", description=__doc__)
    p.add_argument("--data", required=True, help="dataset with ground truth (the canonical file)")
    p.add_argument("--phase", action="append", required=True, metavar="RUN_DIR",
                   help="a training phase's folder (model.pt, history.json), in order; the last one's model is scored")
    p.add_argument("--phase-timings", action="append", default=[], metavar="JSON",
                   help="each phase's --timings-out file, in the same order")
    p.add_argument("--out-dir", default="outputs/quality/score", help="the reconstruction and its figures")
    p.add_argument("--metrics-out", default="metrics/quality.json",
                   help="settings, losses and quality figures: the same bytes on every pinned machine")
    p.add_argument("--timing-out", default="metrics/quality_timing.json",
                   help="this machine's wall seconds and peak memory of each phase")
    add_params_arg(p, default=PROJECT_PARAMS)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.fileio import write_json
    from ptychoreg.harness.quality import score_quality, timing

    if args.phase_timings and len(args.phase_timings) != len(args.phase):
        raise PtychoError(None, f"{len(args.phase_timings)} --phase-timings for {len(args.phase)} --phase: give one per phase")
    params, source = load_params(args.params)
    settings = load_section("quality", params, source)
    metrics, score = score_quality(args.data, [Path(p) for p in args.phase], settings, Path(args.out_dir), log=log)
    write_json(args.metrics_out, metrics)
    q, b = metrics["quality"], metrics["baseline_flat"]
    log(f"quality: amplitude corr {q['amplitude']['correlation']:.3f} ssim {q['amplitude']['ssim']:.3f} "
        f"(flat {b['amplitude']['ssim']:.3f}); phase corr {q['phase']['correlation']:.3f} ssim {q['phase']['ssim']:.3f} "
        f"(flat {b['phase']['ssim']:.3f})")
    if args.phase_timings:
        record = timing(args.phase_timings, metrics["phases"], score)
        write_json(args.timing_out, record)
        log(f"{record['train_s']:.0f} s of training, peak {record['peak_rss_mb']:.0f} MB")
    return 0


main, cli = entry_points("ptycho-quality", _main)


if __name__ == "__main__":
    cli()
