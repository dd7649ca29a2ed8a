"""ptycho-mutation: measure what the project's checks catch. Applies each mutant of `mutants/` (a known bug
class, as a patch) to a scratch copy of the working tree, runs the regression and the fast test suite on
that copy, records per mutant whether it was caught and by which check, and exits 1 naming every mutant
that escaped."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, entry_points, load_params, log
from ptychoreg.core.config import load_section
from ptychoreg.core.errors import PtychoError
from ptychoreg.harness import mutation

EXIT_ESCAPED = 1


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-mutation", description=__doc__)
    p.add_argument("--root", default=".", help="the working tree whose mutants/ are applied to copies of it")
    p.add_argument("--params", default=PROJECT_PARAMS, help="holds the runtime gate's limits (runtime_gate:)")
    p.add_argument("--recipe", default="regression")
    p.add_argument("--metrics-out", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--only", action="append", help="run only this mutant (repeatable)")
    p.add_argument("--no-fast-suite", action="store_true", help="the regression's checks only (quicker)")
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.fileio import write_json, write_text  # numpy: only once the process is set up

    params, source = load_params(args.params)
    gate = load_section("runtime_gate", params, source)
    catalogue = mutation.read_catalogue(args.root)
    unknown = set(args.only or ()) - {m.name for m in catalogue}
    if unknown:
        raise PtychoError(None, f"unknown mutant(s) {', '.join(sorted(unknown))}", key="--only")
    mutants = tuple(m for m in catalogue if not args.only or m.name in args.only)
    settings = mutation.Settings(gate, recipe=args.recipe, fast_suite=not args.no_fast_suite)
    with tempfile.TemporaryDirectory(prefix="ptychoreg-mutation-") as work:
        result = mutation.run_mutants(Path(args.root), mutants, settings, Path(work), log=log)
    write_json(args.metrics_out, mutation.metrics(result))
    write_text(args.report, mutation.report_markdown(result))
    log(f"mutation score {result['caught']}/{result['mutants']} in {result['seconds']:.0f} s; wrote {args.metrics_out}")
    if result["escaped"]:
        print(f"ptycho-mutation: error: {len(result['escaped'])} mutant(s) escaped every check: "
              f"{', '.join(result['escaped'])}", file=sys.stderr)
        return EXIT_ESCAPED
    return 0


main, cli = entry_points("ptycho-mutation", _main)


if __name__ == "__main__":
    cli()
