"""ptycho-train: train the physics-informed network on a dataset; write the model bundle and loss history.

Outputs in --output-dir: model.pt (the bundle), history.json (loss per epoch). `ptycho-plots --run-dir`
draws the loss curve.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ptychoreg.core.cli import ArgumentParser, add_recipe_args, entry_points, hide_cuda_unless, log, run_config
from ptychoreg.core.config import add_section_flags
from ptychoreg.core.phases import Phases


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-train", description=__doc__)
    p.add_argument("--data", required=True, help="training dataset (.npz, data contract)")
    p.add_argument("--output-dir", required=True, help="folder for model.pt and history.json")
    p.add_argument("--layout", choices=("NHW", "HWN"), help="diffraction layout, overriding detection")
    p.add_argument("--init-model", help="start from this bundle's weights (same size, width and probe_big; any "
                                        "gridsize): how a gridsize-2 run starts from a gridsize-1 model")
    p.add_argument("--timings-out", help="write the wall seconds of the run's phases and epochs here (JSON); "
                                         "never into --output-dir, whose files are the same bytes on every run")
    add_recipe_args(p)
    add_section_flags(p, "model")
    add_section_flags(p, "train")
    return p


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    started = time.perf_counter()
    phases = Phases()

    from ptychoreg.core.contract import load_npz
    from ptychoreg.core.fileio import staged_outputs

    config = run_config(args, ("model", "train"))
    hide_cuda_unless(config.train.accelerator)
    data = load_npz(args.data, layout=args.layout)
    phases.done("settings and data")

    # torch only now: bad parameters and bad data are refused in a fraction of a second.
    from ptychoreg.core.training import train_to

    phases.done("imports (torch, ours)")
    out = Path(args.output_dir)
    # The whole folder (and the timings file) is written under temporary names and moved into place only
    # when everything succeeded: a failure leaves the previous run as it was.
    with staged_outputs(out, ("model.pt", "history.json"), inputs=[args.data, args.init_model, args.params],
                        files=[args.timings_out]) as staged:
        timings = args.timings_out and staged.file(args.timings_out)  # refused now, not after the training
        result = train_to(staged.folder, config, data, log=log, init_model=args.init_model, seen_from=out)
        phases.done("training and writing")
        phases.write(timings, epoch_seconds=[round(s, 5) for s in result.epoch_seconds])
    log(f"wrote {out / 'model.pt'} and history.json in {time.perf_counter() - started:.2f} s")
    return 0


main, cli = entry_points("ptycho-train", _main)


if __name__ == "__main__":
    cli()
