"""ptycho-quality-curve: run the quality stage's recipe at scaled training budgets and record what each
buys (figures against training seconds). Not a DVC stage: at the default scales it costs ~20 minutes."""

from __future__ import annotations

import argparse

from ptychoreg.core.cli import ArgumentParser, add_params_arg, entry_points, load_params, log


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-quality-curve", description=__doc__)
    p.add_argument("--data", required=True, help="dataset with ground truth (the canonical file)")
    p.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0],
                   help="multiples of the quality recipes' epochs, both phases (default 0.25 0.5 1 2)")
    p.add_argument("--out-dir", default="outputs/quality_curve", help="one quality run per scale")
    p.add_argument("--metrics-out", default="metrics/quality_curve.json")
    add_params_arg(p)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from pathlib import Path

    from ptychoreg.core.config import load_section
    from ptychoreg.core.errors import PtychoError
    from ptychoreg.core.fileio import write_json
    from ptychoreg.harness.quality_curve import budget_points, curve_record

    if not args.params:
        raise PtychoError(None, "--params is needed: the quality recipes are in it")
    params, source = load_params(args.params)
    settings = load_section("quality", params, source)
    points = []
    for point in budget_points(args.data, args.params, settings, args.scales, Path(args.out_dir), log=log):
        points.append(point)
        write_json(args.metrics_out, curve_record(args.data, args.params, points))  # a long run keeps what it measured
    return 0


main, cli = entry_points("ptycho-quality-curve", _main)


if __name__ == "__main__":
    cli()
