"""ptycho-outputs: outputs that travel. Which stages the team remote restored, and whether outputs rebuilt
here have the bytes dvc.lock records (every output but those dvc.yaml labels `host`).

  ptycho-outputs status              is this machine in the pinned set (the canary); each stage restored or to rebuild (why)
  ptycho-outputs verify [STAGE ...]  rebuild the stages (default: every stage with outputs that travel) and
                                     compare each output with dvc.lock at --rev; --no-rebuild compares what
                                     is there now. Exit 1 when one differs: do not publish then.
  ptycho-outputs repro               the main job: status, `dvc repro` (what the pull did not restore),
                                     re-measure the timing stages it did not rerun, verify what it rebuilt
"""

from __future__ import annotations

import argparse

from ptychoreg.core.cli import ArgumentParser, entry_points, log

EXIT_DIFFERS = 1


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-outputs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="the pinned set, and each stage restored or to rebuild")
    verify = sub.add_parser("verify", help="rebuild stages and compare their outputs with dvc.lock")
    verify.add_argument("stages", nargs="*", help="stages to rebuild (default: every stage with outputs that travel)")
    verify.add_argument("--rev", default="HEAD", help="the revision whose dvc.lock the outputs must match")
    verify.add_argument("--no-rebuild", action="store_true", help="compare the outputs there now")
    verify.add_argument("--outside-ok", action="store_true",
                        help="exit 0 when this machine is outside the pinned set (CI there relies on golden values)")
    repro = sub.add_parser("repro", help="status, dvc repro, re-measure the timing stages, verify the rebuilt ones")
    repro.add_argument("--rev", default="HEAD")
    repro.add_argument("--outside-ok", action="store_true", help="as for verify")
    repro.add_argument("--no-remeasure", action="store_true",
                       help="leave the timing stages dvc repro did not rerun with their committed measurements")
    return p


def _pinned_line() -> bool:
    from ptychoreg.harness import canary

    pinned, line = canary.check()
    log(f"numerics: {line}: " + ("every output but the host measurements must match dvc.lock byte for byte" if pinned else
        "this machine's outputs are not expected to match dvc.lock and must not be published; the golden values "
        "are the check here"))
    return pinned


def _status(order, outputs) -> dict:
    from ptychoreg.harness import outputs as o

    stale = o.stale_stages()
    for stage in order:
        mine = [out for out in outputs if out.stage == stage]
        if stage in stale:
            log(f"  {stage}: to rebuild ({o.reasons(stale[stage])})")
        elif not mine:
            log(f"  {stage}: up to date (a check: no outputs)")
        elif all(out.host for out in mine):
            log(f"  {stage}: up to date (host measurements as committed)")
        else:
            log(f"  {stage}: up to date (outputs match dvc.lock: pulled, or built here before)")
    log(f"{len(order) - len(stale)} of {len(order)} stages up to date, {len(stale)} to rebuild")
    return stale


def _verify(stages, outputs, rev, pinned: bool, outside_ok: bool) -> int:
    from ptychoreg.harness import outputs as o

    verdicts = o.verify(stages, outputs, rev)
    log(f"outputs against dvc.lock at {rev}:\n{o.table(verdicts)}")
    differ = [v for v in verdicts if not v.matched]
    compared = [v for v in verdicts if not v.output.host]
    log(f"{len(compared) - len(differ)} of {len(compared)} outputs match"
        + ("" if not differ else ("; " + ("this machine is outside the pinned set, so differences are expected"
                                           if not pinned else "on a machine of the pinned set: a bug or a stale dvc.lock"))))
    return EXIT_DIFFERS if differ and (pinned or not outside_ok) else 0


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.harness import outputs as o

    order, outputs = o.pipeline()  # first: outside a DVC repository the answer is one line, at once
    pinned = _pinned_line()
    if args.command == "status":
        _status(order, outputs)
        return 0
    if args.command == "verify":
        unknown = sorted(set(args.stages) - set(order))
        if unknown:
            from ptychoreg.core.errors import PtychoError

            raise PtychoError("dvc.yaml", f"no stage {', '.join(unknown)} (stages: {', '.join(order)})")
        stages = [s for s in order if s in args.stages] if args.stages else o.reproducible_stages(order, outputs)
        if not args.no_rebuild:
            o.rebuild(stages, log)
        return _verify(stages, outputs, args.rev, pinned, args.outside_ok)
    # repro
    import subprocess
    import sys

    stale = _status(order, outputs)
    code = subprocess.run([sys.executable, "-m", "dvc", "repro"], stdin=subprocess.DEVNULL).returncode
    if code:
        return code
    host = [s for s in o.timing_stages(order, outputs) if s not in stale]
    if host and not args.no_remeasure:
        log(f"re-measuring on this machine: {', '.join(host)}")
        o.rebuild(host, log)
    rebuilt = [s for s in o.reproducible_stages(order, outputs) if s in stale]
    log(f"up to date after the pull: {', '.join(s for s in order if s not in stale) or 'none'}; stale after the pull "
        f"(rerun by dvc repro, or skipped when their inputs came back as recorded): {', '.join(s for s in order if s in stale) or 'none'}"
        + (f"; re-measured: {', '.join(host)}" if host and not args.no_remeasure else ""))
    return _verify(rebuilt, outputs, args.rev, pinned, args.outside_ok) if rebuilt else 0


main, cli = entry_points("ptycho-outputs", _main)


if __name__ == "__main__":
    cli()
