"""ptycho-regress: the train-to-infer regression on the fixture (the `regress` stage).

Verifies the fixture's sha256 against --fixture-metrics, runs train + infer `regress.repeats` times,
checks the results are real, and writes --metrics-out and, per repeat, the seconds to --runtime-plot
(a DVC plot: `dvc plots diff <revs>` shows the runtime across commits).
"""

from __future__ import annotations

import argparse

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, add_recipe_args, entry_points, load_params, log
from ptychoreg.core.config import load_section
from ptychoreg.harness.runner import RecipeRun


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-regress", description=__doc__)
    p.add_argument("--fixture", required=True)
    p.add_argument("--fixture-metrics", default="metrics/fixture.json", help="holds the fixture's expected sha256")
    p.add_argument("--staged-run", help="the infer_fixture stage's output folder: the timed runs must reproduce its bytes")
    p.add_argument("--metrics-out", default="metrics/regression.json")
    p.add_argument("--runtime-plot", default="reports/regression/runtime.json")
    add_recipe_args(p, default="regression", params=PROJECT_PARAMS)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.fileio import write_json
    from ptychoreg.harness.fixture import recorded_sha256
    from ptychoreg.harness.regress import run_regression

    params, source = load_params(args.params)
    settings = load_section("regress", params, source)
    expected = recorded_sha256(args.fixture_metrics)
    metrics, per_repeat = run_regression(args.fixture, expected, settings, RecipeRun.of(args.params, args.recipe),
                                         staged_run=args.staged_run, log=log)
    write_json(args.runtime_plot, per_repeat)
    write_json(args.metrics_out, metrics)
    t = metrics["total_s"]
    log(f"regression passed: total {t['median']:.2f} s median (min {t['min']:.2f}, max {t['max']:.2f}, "
        f"CV {100 * t['cv']:.1f} %), outputs identical over {settings.repeats} repeats: "
        f"{metrics['distinct_outputs'] == 1}")
    return 0


main, cli = entry_points("ptycho-regress", _main)


if __name__ == "__main__":
    cli()
