"""ptycho-report: render the fixture notes and the regression report from metrics/ (the `report` stage)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ptychoreg.core.cli import ArgumentParser, entry_points, log
from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.reports import fixture_notes, regression_report
from ptychoreg.harness.sensitivity import read_cells


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-report", description=__doc__)
    p.add_argument("--fixture-metrics", default="metrics/fixture.json")
    p.add_argument("--regression-metrics", default="metrics/regression.json")
    p.add_argument("--sensitivity-cells", default="metrics/sensitivity", help="the sensitivity matrix's cell metrics")
    p.add_argument("--quality-metrics", default="metrics/quality.json")
    p.add_argument("--quality-timing", default="metrics/quality_timing.json")
    p.add_argument("--reference-metrics", default="metrics/reference.json")
    p.add_argument("--reference-timing", default="metrics/reference_timing.json")
    p.add_argument("--quality-curve", default="metrics/quality_curve.json", help="what each training budget buys "
                   "(ptycho-quality-curve); left out of the report when the file is absent")
    p.add_argument("--fixture", required=True, help="the fixture's path, as the notes name it (params fixture.output)")
    p.add_argument("--fixture-notes", default="reports/fixture.md")
    p.add_argument("--regression-report", default="reports/regression.md")
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.fileio import write_text

    def read(path):
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise PtychoError(path, f"cannot read metrics ({exc})") from None

    fixture, regression, quality, reference = (read(p) for p in (args.fixture_metrics, args.regression_metrics,
                                                                  args.quality_metrics, args.reference_metrics))
    quality["timing"], reference["timing"] = read(args.quality_timing), read(args.reference_timing)
    curve = read(args.quality_curve) if Path(args.quality_curve).exists() else None
    cells = read_cells(args.sensitivity_cells)
    write_text(args.fixture_notes, fixture_notes(fixture, regression, cells, args.fixture))
    write_text(args.regression_report, regression_report(regression, cells, quality, reference, curve))
    log(f"wrote {args.fixture_notes} and {args.regression_report}")
    return 0


main, cli = entry_points("ptycho-report", _main)


if __name__ == "__main__":
    cli()
