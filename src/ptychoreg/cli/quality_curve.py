"""ptycho-quality-curve: what each training budget buys, as DVC experiments (./tasks quality-curve runs both).

  ptycho-quality-curve queue [--scales 0.25 0.5 1 2]   one `dvc exp run --queue` per scale of the quality
                                                       recipes' epochs (run them: `dvc exp run --run-all`)
  ptycho-quality-curve collect                         the budget experiments' figures against their training
                                                       seconds (`dvc exp show`) into metrics/quality_curve.json
"""

from __future__ import annotations

import argparse

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, entry_points, log
from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.dvc import dvc, dvc_json
from ptychoreg.harness.quality_curve import QUALITY_PHASES, experiment_name, points, queue_args
from ptychoreg.harness.runner import RecipeRun


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-quality-curve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    queue = sub.add_parser("queue", help="queue one experiment per budget")
    queue.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0],
                       help="multiples of the quality recipes' epochs, both phases (default 0.25 0.5 1 2)")
    queue.add_argument("--params", default=PROJECT_PARAMS, help="the params file whose recipes are scaled")
    collect = sub.add_parser("collect", help="write the finished budget experiments' points")
    collect.add_argument("--metrics-out", default="metrics/quality_curve.json")
    return p


def _main(argv):
    args = parser().parse_args(argv)
    if args.command == "queue":
        full = [RecipeRun.of(args.params, recipe).config.train.max_epochs for recipe in QUALITY_PHASES]
        for scale in sorted(set(args.scales)):
            dvc(*queue_args(full, scale))
            print(experiment_name(scale), flush=True)  # the names, for `dvc queue logs --follow`
        return 0
    from ptychoreg.core.fileio import write_json

    found = points(dvc_json("exp", "show"))
    if not found:
        raise PtychoError(None, "no finished budget experiment (budget-x...) in `dvc exp show`: "
                                "`ptycho-quality-curve queue`, then `dvc exp run --run-all`")
    write_json(args.metrics_out, {"points": found})
    for p in found:
        log(f"x{p['scale']:g}: {' + '.join(map(str, p['epochs']))} epochs, {p['train_s']:.0f} s of training, "
            f"amplitude SSIM {p['amplitude_ssim']:.3f}, phase SSIM {p['phase_ssim']:.3f}")
    return 0


main, cli = entry_points("ptycho-quality-curve", _main)


if __name__ == "__main__":
    cli()
