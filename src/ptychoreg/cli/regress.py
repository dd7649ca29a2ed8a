"""ptycho-regress: the train-to-infer regression on the fixture (the `regress` stage).

Verifies the fixture's sha256 against --fixture-metrics, runs train + infer `regress.repeats` times,
checks the results are real, and writes --metrics-out plus the last run's plots to --plots-dir.
"""

from __future__ import annotations

import argparse

from ptychoreg.cli._common import add_params_arg, entry_points, load_params, log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-regress", description=__doc__)
    p.add_argument("--fixture", required=True)
    p.add_argument("--fixture-metrics", default="metrics/fixture.json", help="holds the fixture's expected sha256")
    p.add_argument("--out-dir", default="outputs/regression", help="the last run's outputs")
    p.add_argument("--metrics-out", default="metrics/regression.json")
    p.add_argument("--plots-dir", default="reports/regression")
    add_params_arg(p)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from pathlib import Path

    from ptychoreg.fileio import write_json
    from ptychoreg.fixture import recorded_sha256
    from ptychoreg.harness.regress import RegressSettings, run_regression
    from ptychoreg.harness.runner import publish_plots

    params, source = load_params(args.params)
    settings = RegressSettings.from_params(params.get("regress"), where=source)
    expected = recorded_sha256(args.fixture_metrics)
    out = Path(args.out_dir)
    metrics = run_regression(args.fixture, expected, settings, out, params_path=args.params, log=log)
    publish_plots(out, Path(args.plots_dir))
    write_json(args.metrics_out, metrics)
    t = metrics["total_s"]
    log(f"regression passed: total {t['median']:.2f} s median (min {t['min']:.2f}, max {t['max']:.2f}, "
        f"CV {100 * t['cv']:.1f} %), outputs identical over {settings.repeats} repeats: "
        f"{metrics['distinct_outputs'] == 1}")
    return 0


main, cli = entry_points("ptycho-regress", _main)


if __name__ == "__main__":
    cli()
