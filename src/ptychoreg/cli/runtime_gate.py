"""ptycho-runtime-gate: time the fixture regression of the working tree against a base revision (default
the previous commit) on this machine, interleaved, and exit 1 when train, infer or the total got slower
than params.yaml `runtime_gate.max_slowdown` allows, unless HEAD's commit message accepts it with the
trailer `Runtime-Gate: accept <why>` (an intended cost, stated where review sees it). With --measure-error-rates, measure instead how often
the gate raises a false alarm on unchanged code and how often it catches an injected slowdown.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, add_recipe_args, entry_points, load_params, log
from ptychoreg.core.config import load_section
from ptychoreg.harness import runtime_gate as gate_lib
from ptychoreg.harness.runner import RecipeRun, project_data

EXIT_SLOWER = 1


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-runtime-gate", description=__doc__)
    p.add_argument("--fixture", help="default: the params file's fixture.output")
    p.add_argument("--base", help="git revision to compare with (default: params runtime_gate.base)")
    p.add_argument("--pairs", type=int, help="interleaved pairs (default: params runtime_gate.pairs)")
    p.add_argument("--metrics-out", help="write the verdict (or the error rates) as JSON here")
    p.add_argument("--measure-error-rates", type=int, metavar="DECISIONS",
                   help="time three checkouts of HEAD (base, same, slowed) for this many gate decisions")
    p.add_argument("--slowdown", type=float, default=0.3, help="injected slowdown for --measure-error-rates")
    p.add_argument("--report", help="with --measure-error-rates: the markdown report")
    add_recipe_args(p, default="regression", params=PROJECT_PARAMS)
    return p


def _main(argv):
    args = parser().parse_args(argv)

    def interrupted(signum, frame):
        raise KeyboardInterrupt  # so the scratch checkouts are removed on the way out

    signal.signal(signal.SIGTERM, interrupted)

    from ptychoreg.core.fileio import write_json, write_text

    params, source = load_params(args.params)
    regression = RecipeRun.of(args.params, args.recipe)
    gate = load_section("runtime_gate", params, source).with_changes("command line", base=args.base, pairs=args.pairs)
    fixture = args.fixture or project_data(args.params)[0]
    if args.measure_error_rates:
        result = gate_lib.measure_error_rates(fixture, regression, gate, args.measure_error_rates, args.slowdown, log=log)
        report = gate_lib.error_rates_markdown(result)
        if args.report:
            write_text(args.report, report)
        if args.metrics_out:
            write_json(args.metrics_out, result)
        log(report)
        return 0
    result, load = gate_lib.run_gate(fixture, regression, gate, log=log)
    log(gate_lib.format_verdict(result))
    if args.metrics_out:
        write_json(args.metrics_out, {"base": gate.base, "pairs": gate.pairs, "max_slowdown": gate.max_slowdown,
                                      "max_memory_growth": gate.max_memory_growth, "machine_load": load, **result})
    slower = [part for part, r in result.items() if not r["ok"]]
    neighbour = " (the machine was busy during the measurement: see above)" if load["busy"] else ""
    reason = gate_lib.accepted_slowdown() if slower else None
    if reason:
        log(f"runtime gate: {', '.join(slower)} slower than {gate.base} beyond {100 * gate.max_slowdown:.0f} %, "
            f"accepted by HEAD's commit message ({gate_lib.ACCEPT_TRAILER} {reason})")
        return 0
    if slower:
        print(f"ptycho-runtime-gate: error: against {gate.base}, beyond +{100 * gate.max_slowdown:.0f} % time or "
              f"+{100 * gate.max_memory_growth:.0f} % peak memory: {', '.join(slower)}{neighbour}", file=sys.stderr)
        return EXIT_SLOWER
    log(f"runtime gate passed: no part slower than {gate.base} beyond {100 * gate.max_slowdown:.0f} %, "
        f"no peak memory larger beyond {100 * gate.max_memory_growth:.0f} %")
    return 0


main, cli = entry_points("ptycho-runtime-gate", _main)


if __name__ == "__main__":
    cli()
