"""ptycho-plots: draw train + infer runs' figures (loss_curve.png, amplitude.png, phase.png) with matplotlib,
from the run folders' history.json and reconstruction.npz; with --data, beside the true object.

The timed train and infer CLIs write no pictures; this is the `plots` stage's command.
"""

from __future__ import annotations

import argparse

from ptychoreg.core.cli import ArgumentParser, entry_points, log
from ptychoreg.core.errors import PtychoError


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-plots", description=__doc__)
    p.add_argument("--run-dir", action="append", required=True,
                   help="folder written by ptycho-train and/or ptycho-infer (repeat for several; each "
                        "reconstruction gets a panel)")
    p.add_argument("--label", action="append", help="panel title of each --run-dir, in order (default: folder names)")
    p.add_argument("--data", help="the dataset the run reconstructed; its true object (if any) goes beside")
    p.add_argument("--out-dir", help="where the PNGs go (default: the first run folder)")
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.contract import load_npz
    from ptychoreg.plots import run_figures

    truth = load_npz(args.data).object if args.data else None
    if args.label and len(args.label) != len(args.run_dir):
        raise PtychoError(None, f"{len(args.label)} --label for {len(args.run_dir)} --run-dir: give one per run folder")
    written = run_figures(args.run_dir, args.out_dir or args.run_dir[0], truth, args.label)
    if not written:
        raise PtychoError(args.run_dir[0], "holds neither history.json nor reconstruction.npz: nothing to draw")
    log(f"wrote {', '.join(str(p) for p in written)}")
    return 0


main, cli = entry_points("ptycho-plots", _main)


if __name__ == "__main__":
    cli()
