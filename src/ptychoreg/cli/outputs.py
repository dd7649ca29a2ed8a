"""ptycho-outputs: what DVC cannot say about the outputs that travel (every output but those dvc.yaml
labels `host`): whether this machine is in the pinned set, and whether what it built has dvc.lock's bytes.
DVC does the rest (./tasks repro: `dvc pull --allow-missing`, `dvc repro`, then this check).

  ptycho-outputs check [--rev REV]     the canary's line, then each output that travels against dvc.lock
                                       at REV (default HEAD) and `dvc status`; exit 1 when one differs
  ptycho-outputs stages travel|timing  the stages with outputs that travel, or that measure this machine's
                                       time, upstream first: `dvc repro -f -s $(ptycho-outputs stages timing)`
"""

from __future__ import annotations

import argparse

from ptychoreg.core.cli import ArgumentParser, entry_points, log
from ptychoreg.harness import outputs

EXIT_DIFFERS = 1


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-outputs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="the pinned set, and each output that travels against dvc.lock")
    check.add_argument("--rev", default="HEAD", help="the revision whose dvc.lock the outputs must match")
    check.add_argument("--outside-ok", action="store_true",
                       help="exit 0 when this machine is outside the pinned set (CI there relies on golden values)")
    stages = sub.add_parser("stages", help="stage names for `dvc repro -f -s`")
    stages.add_argument("label", choices=("travel", "timing"))
    return p


def _main(argv):
    args = parser().parse_args(argv)
    order, declared = outputs.pipeline()  # first: outside a DVC repository the answer is one line, at once
    if args.command == "stages":
        print(" ".join(outputs.stages_with(order, declared, args.label)))
        return 0
    from ptychoreg.harness import canary

    pinned, line = canary.check()
    log(f"numerics: {line}: " + ("every output but the host measurements must match dvc.lock byte for byte" if pinned else
        "this machine's outputs are not expected to match dvc.lock and must not be published; the golden values "
        "are the check here"))
    differ, absent = outputs.differences(declared, args.rev)
    for name, what in differ.items():
        log(f"  {name}: DIFFERS: {what}")
    if absent:
        log(f"  not in the workspace, not compared: {', '.join(absent)}")
    compared = sum(o.travels for o in declared) - len(absent)
    log(f"{compared - len(differ)} of {compared} outputs that travel match dvc.lock at {args.rev}"
        + ("" if not differ else ("; this machine is outside the pinned set, so differences are expected" if not pinned
                                  else "; on a machine of the pinned set: a bug or a stale dvc.lock")))
    return EXIT_DIFFERS if differ and (pinned or not args.outside_ok) else 0


main, cli = entry_points("ptycho-outputs", _main)


if __name__ == "__main__":
    cli()
