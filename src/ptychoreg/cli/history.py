"""ptycho-history: plot the regression's runtime over the commits (from `dvc metrics show -A`) to a PNG."""

from __future__ import annotations

import argparse

from ptychoreg.cli._common import entry_points, log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-history", description=__doc__)
    p.add_argument("--output", default="reports/runtime_history.png")
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.errors import PtychoError
    from ptychoreg.harness.history import commit_order, render, runtime_points, show_all

    points = runtime_points(show_all(), commit_order())
    if not points:
        raise PtychoError(None, "no commit or workspace holds metrics/regression.json with runtime medians yet")
    render(points, args.output)
    log(f"wrote {args.output} ({len(points)} point(s))")
    return 0


main, cli = entry_points("ptycho-history", _main)


if __name__ == "__main__":
    cli()
