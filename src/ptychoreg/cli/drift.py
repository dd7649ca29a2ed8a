"""ptycho-drift: the drift gate. Compares the workspace metrics with a git revision (default HEAD)
through `dvc metrics diff` and exits non-zero with a readable table when a runtime rose, a quality
figure fell beyond tolerance (params.yaml `drift:`), or the fixture changed while its params did not.
"""

from __future__ import annotations

import argparse
import sys

from ptychoreg.cli._common import exit_now, add_params_arg, load_params, log, run

EXIT_DRIFT = 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-drift", description=__doc__)
    p.add_argument("--rev", default="HEAD", help="git revision holding the baseline metrics")
    p.add_argument("--warn-runtime", action="store_true",
                   help="report runtime rises without failing (for shared CI machines; quality and fixture still gate)")
    add_params_arg(p)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.harness.drift import DriftSettings, collect, evaluate, format_table

    params, source = load_params(args.params)
    settings = DriftSettings.from_params(params.get("drift"), where=source)
    metrics_diff, params_diff = collect(args.rev)
    findings = evaluate(metrics_diff, params_diff, settings)
    log(f"drift against {args.rev}:")
    log(format_table(findings, runtime_warn_only=args.warn_runtime))
    failed = [f for f in findings if not f.ok and not (args.warn_runtime and f.rule == "runtime")]
    if failed:
        print(f"ptycho-drift: error: {len(failed)} metric(s) drifted beyond tolerance: "
              f"{', '.join(f.metric for f in failed)}", file=sys.stderr)
        return EXIT_DRIFT
    log("no drift beyond tolerance")
    return 0


def main(argv=None) -> int:
    return run("ptycho-drift", _main, argv)


def cli() -> None:
    """Console-script and `python -m` entry point."""
    exit_now(main())


if __name__ == "__main__":
    cli()
