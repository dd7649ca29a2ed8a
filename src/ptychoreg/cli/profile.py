"""ptycho-profile: profile a dataset and cross-check it against the data contract (params.yaml profile.expect).

Writes --metrics-out (JSON) and --report (markdown). A failed cross-check exits non-zero and leaves
the previous outputs in place.
"""

from __future__ import annotations

import argparse
import sys

from ptychoreg.core.cli import ArgumentParser, EXIT_ERROR, add_params_arg, entry_points, load_params, log


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-profile", description=__doc__)
    p.add_argument("--source", required=True, help="dataset to profile (.npz)")
    p.add_argument("--layout", choices=("NHW", "HWN"), help="diffraction layout, overriding detection")
    p.add_argument("--metrics-out", default="metrics/profile.json")
    p.add_argument("--report", default="reports/profile.md")
    add_params_arg(p)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.fileio import write_json, write_text
    from ptychoreg.harness.profile import cross_check, profile_dataset, report_markdown

    params, _ = load_params(args.params)
    profile = profile_dataset(args.source, layout=args.layout)
    rows = cross_check(profile, dict((params.get("profile") or {}).get("expect") or {}))
    failed = [r for r in rows if not r["ok"]]
    if failed:
        detail = "; ".join(f"{r['check']} expected {r['expected']}, observed {r['observed']}" for r in failed)
        print(f"ptycho-profile: error: {args.source}: cross-check failed: {detail}", file=sys.stderr)
        return EXIT_ERROR
    profile["cross_check"] = {r["check"]: r["ok"] for r in rows}
    write_json(args.metrics_out, profile)
    write_text(args.report, report_markdown(profile, rows))
    log(f"profiled {args.source}: N={profile['n']} {profile['h']}x{profile['w']} {profile['dtype']} "
        f"layout {profile['layout']}; {len(rows)} checks passed")
    return 0


main, cli = entry_points("ptycho-profile", _main)


if __name__ == "__main__":
    cli()
