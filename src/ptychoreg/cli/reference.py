"""ptycho-reference: the classical reference reconstruction (ePIE, known probe and positions) of a dataset
with ground truth, scored over the same region as the PINN's (the `reference` stage).

Writes --out-dir/reconstruction.npz (object, mask), --metrics-out (quality figures, seconds, settings).
"""

from __future__ import annotations

import argparse
import time

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, add_params_arg, entry_points, load_params, log
from ptychoreg.core.config import load_section
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.phases import own_peak_rss_mb


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-reference", description=__doc__)
    p.add_argument("--data", required=True, help="dataset with ground truth (the canonical file)")
    p.add_argument("--out-dir", default="outputs/reference")
    p.add_argument("--metrics-out", default="metrics/reference.json",
                   help="settings and quality figures: the same bytes on every pinned machine")
    p.add_argument("--timing-out", default="metrics/reference_timing.json", help="this machine's wall seconds")
    add_params_arg(p, default=PROJECT_PARAMS)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.contract import load_npz
    from ptychoreg.core.fileio import staged_outputs, write_json, write_npz

    params, source = load_params(args.params)
    settings = load_section("reference", params, source)
    data = load_npz(args.data)
    if data.object is None:
        raise PtychoError(args.data, "holds no true object to score the reference against", key="objectGuess")

    import torch

    from ptychoreg.evaluation.quality import headline, quality_report
    from ptychoreg.evaluation.reference import epie, scanned_region

    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    result = epie(data, settings.epochs, seed=settings.seed, alpha=settings.alpha, log=log)
    seconds = time.perf_counter() - started
    mask = scanned_region(data, result.object.shape)
    metrics = {
        "method": "ePIE, known probe and positions",
        "settings": settings.model_dump(),
        "data": args.data,
        "amplitude_error_last": result.history[-1]["amplitude_error"],
        **headline(quality_report(result.object, data.object, mask)),
    }

    # The folder and both records move into place together, or none of them.
    with staged_outputs(args.out_dir, ("reconstruction.npz",), inputs=[args.data, args.params],
                        files=[args.metrics_out, args.timing_out]) as staged:
        write_npz(staged.folder / "reconstruction.npz", {"object": result.object, "mask": mask})
        write_json(staged.file(args.metrics_out), metrics)
        write_json(staged.file(args.timing_out), {"seconds": seconds, "epoch_seconds": [round(h["seconds"], 5) for h in result.history],
                                                  "peak_rss_mb": own_peak_rss_mb()})
    q = metrics["quality"]
    log(f"ePIE, {settings.epochs} epochs in {seconds:.1f} s: amplitude SSIM {q['amplitude']['ssim']:.4f}, "
        f"phase SSIM {q['phase']['ssim']:.4f}")
    return 0


main, cli = entry_points("ptycho-reference", _main)


if __name__ == "__main__":
    cli()
