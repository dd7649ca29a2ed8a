"""ptycho-canary: is this machine in the pinned set? A small canary of every operation the workflow uses,
computed, hashed per part and compared with the hashes recorded in the repository
(src/ptychoreg/harness/canary.json). In the set, every output but the host measurements must match dvc.lock
byte for byte; outside it, the golden values under their tolerances are the check.

  ptycho-canary                   one line: in the pinned set, or which parts differ (exit 1)
  ptycho-canary --json            every part's hash
  ptycho-canary --record          re-record canary.json (after an intended change of the numerics)
  ptycho-canary cross-vendor      the canary and a short training per recipe natively and under qemu-user
                                  as an AMD and an Intel CPU model; exit 1 when a hash differs or an
                                  approximate instruction ran
"""

from __future__ import annotations

import argparse
import json

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, add_params_arg, entry_points, log
from ptychoreg.harness.runner import project_data

EXIT_OUTSIDE = 1


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-canary", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print every part's hash as JSON")
    mode.add_argument("--record", action="store_true", help="write this machine's hashes to canary.json")
    sub = p.add_subparsers(dest="command")
    for name, help in (("cross-vendor", "natively and under qemu-user as an AMD and an Intel CPU model"),
                       ("worker", "one machine's hashes: the canary and each recipe (JSON; what cross-vendor runs)")):
        command = sub.add_parser(name, help=help)
        add_params_arg(command, PROJECT_PARAMS)
        command.add_argument("--data", help="a dataset to train each recipe on briefly (default: the params file's fixture.output)")
        if name == "cross-vendor":
            command.add_argument("--report", help="write the report (JSON) here, e.g. metrics/crossvendor.json")
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.harness import canary

    data = args.command and (args.data or project_data(args.params)[0])
    if args.command == "worker":
        print(json.dumps(canary.worker(args.params, data)))
        return 0
    if args.command == "cross-vendor":
        from ptychoreg.core.fileio import write_json

        report = canary.cross_vendor(args.params, data, log)
        for name, parts in report["differ_from_native"].items():
            log(f"{name}: " + (f"DIFFERS from the native run in {', '.join(parts)}" if parts else
                               f"all {report['parts']} hashes equal the native run's"))
        for name, lines in report["approximate_instructions"].items():
            log(f"{name}: " + (f"approximate instructions ran: {'; '.join(lines)}" if lines else
                               "no approximate instruction ran"))
        log(f"native canary {'matches' if report['canary_matches_record'] else 'DIFFERS from'} canary.json; "
            f"{report['wall_s']} s in all")
        if args.report:
            write_json(args.report, {k: v for k, v in report.items() if k != "hashes"})
        return 0 if report["ok"] else EXIT_OUTSIDE
    if args.json or args.record:
        import torch

        torch.set_num_threads(1)
        hashes = canary.run()
        if args.record:
            canary.record(hashes)
        print(json.dumps(hashes, indent=1))
        return 0
    ok, line = canary.check()
    log(line)
    return 0 if ok else EXIT_OUTSIDE


main, cli = entry_points("ptycho-canary", _main)


if __name__ == "__main__":
    cli()
