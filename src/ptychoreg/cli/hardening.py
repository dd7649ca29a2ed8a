"""ptycho-hardening: run the hardening matrix (bad inputs, interrupted runs, tampering, concurrency)
through the real CLIs and write the report; exits 1 when any case fails (the `hardening` stage)."""

from __future__ import annotations

import argparse
import sys

from ptychoreg.cli._common import entry_points, log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-hardening", description=__doc__)
    p.add_argument("--canonical", help="a large dataset to interrupt the generator on (default: a synthetic one)")
    p.add_argument("--report", default="reports/hardening.md")
    p.add_argument("--metrics-out", default="metrics/hardening.json")
    return p


def _main(argv):
    args = parser().parse_args(argv)
    import tempfile
    from pathlib import Path

    from ptychoreg.fileio import write_json, write_text
    from ptychoreg.harness.hardening import metrics, report_markdown, run_matrix

    with tempfile.TemporaryDirectory(prefix="ptycho-hardening-") as tmp:
        matrix = run_matrix(Path(tmp), Path(args.canonical) if args.canonical else None, log=log)
    write_text(args.report, report_markdown(matrix))
    summary = metrics(matrix)
    write_json(args.metrics_out, summary)
    log(f"{summary['passed']} of {summary['cases']} cases pass; report in {args.report}")
    if summary["passed"] != summary["cases"]:
        print(f"ptycho-hardening: error: {summary['cases'] - summary['passed']} case(s) failed: "
              + "; ".join(f"{r['area']}: {r['case']} ({r['command']})" for r in summary["failed"]), file=sys.stderr)
        return 1
    return 0


main, cli = entry_points("ptycho-hardening", _main)


if __name__ == "__main__":
    cli()
