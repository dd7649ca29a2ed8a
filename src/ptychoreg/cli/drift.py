"""ptycho-drift: the drift gate. Compares the workspace metrics with a git revision (default HEAD)
through `dvc metrics diff` and exits non-zero with a readable table when a runtime rose, a quality
figure fell beyond tolerance (params.yaml `drift:`), or the fixture changed while its params did not.
"""

from __future__ import annotations

import argparse
import sys

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, add_params_arg, entry_points, load_params, log
from ptychoreg.core.config import load_section
from ptychoreg.harness.drift import busy_measurements, collect, evaluate, format_table

EXIT_DRIFT = 1


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-drift", description=__doc__)
    p.add_argument("--rev", default="HEAD", help="git revision holding the baseline metrics")
    p.add_argument("--warn", action="append", choices=("runtime", "memory", "quality"), default=[],
                   help="report this rule's findings without failing (repeatable). CI warns on runtime (shared "
                        "machines are noisy) and quality (the quality stage enforces absolute floors there, and "
                        "another CPU family trains to slightly different numbers); fixture drift always fails")
    add_params_arg(p, default=PROJECT_PARAMS)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    params, source = load_params(args.params)
    settings = load_section("drift", params, source)
    metrics_diff, params_diff = collect(args.rev)
    findings = evaluate(metrics_diff, params_diff, settings)
    log(f"drift against {args.rev}:")
    log(format_table(findings, warn_only=set(args.warn)))
    for note in busy_measurements(metrics_diff, settings):
        log(f"note: {note}")
    failed = [f for f in findings if not f.ok and f.rule not in args.warn]
    if failed:
        print(f"ptycho-drift: error: {len(failed)} metric(s) drifted beyond tolerance: "
              f"{', '.join(f.metric for f in failed)}", file=sys.stderr)
        return EXIT_DRIFT
    log("no drift beyond tolerance")
    return 0


main, cli = entry_points("ptycho-drift", _main)


if __name__ == "__main__":
    cli()
