"""ptycho-golden-spread: run the fixture regression under every CPU code path this machine offers and
record how far its golden numbers move (the measured spread the golden tolerances are chosen from)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, add_recipe_args, entry_points, log
from ptychoreg.harness.runner import RecipeRun


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-golden-spread", description=__doc__)
    p.add_argument("--fixture", required=True)
    p.add_argument("--metrics-out", required=True)
    p.add_argument("--report", required=True)
    add_recipe_args(p, default="regression", params=PROJECT_PARAMS)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.fileio import write_json, write_text
    from ptychoreg.harness.golden import measure_spread, spread_markdown

    with tempfile.TemporaryDirectory(prefix="ptychoreg-spread-") as work:
        records, dev = measure_spread(args.fixture, RecipeRun.of(args.params, args.recipe), Path(work), log=log)
    write_json(args.metrics_out, {"variants": sorted(records), "deviation": dev})
    write_text(args.report, spread_markdown(dev, list(records)))
    log(f"wrote {args.metrics_out} and {args.report}")
    return 0


main, cli = entry_points("ptycho-golden-spread", _main)


if __name__ == "__main__":
    cli()
