"""ptycho-train: train the physics-informed network on a dataset; write the model bundle and loss history.

Outputs in --output-dir: model.pt (the bundle), history.json (loss per epoch). `ptycho-plots --run-dir`
draws the loss curve.
"""

from __future__ import annotations

import argparse
import time

from ptychoreg.cli._common import add_params_arg, entry_points, hide_cuda_unless, load_params, log
from ptychoreg.config import add_section_flags
from ptychoreg.steps import Phases


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-train", description=__doc__)
    p.add_argument("--data", required=True, help="training dataset (.npz, data contract)")
    p.add_argument("--output-dir", required=True, help="folder for model.pt and history.json")
    p.add_argument("--layout", choices=("NHW", "HWN"), help="diffraction layout, overriding detection")
    p.add_argument("--init-model", help="start from this bundle's weights (same size, width and probe_big; any "
                                        "gridsize): how a gridsize-2 run starts from a gridsize-1 model")
    p.add_argument("--timings-out", help="write the wall seconds of the run's phases and epochs here (JSON); "
                                         "never into --output-dir, whose files are the same bytes on every run")
    add_params_arg(p)
    add_section_flags(p, "model")
    add_section_flags(p, "train")
    return p


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    hide_cuda_unless(args.accelerator)
    started = time.perf_counter()
    phases = Phases()

    from dataclasses import fields
    from pathlib import Path

    from ptychoreg.config import SECTIONS, build_config
    from ptychoreg.contract import load_npz

    params, params_source = load_params(args.params)
    overrides = {section: {f.name: getattr(args, f.name) for f in fields(SECTIONS[section])} for section in ("model", "train")}
    config = build_config(params, overrides, where=params_source)
    data = load_npz(args.data, layout=args.layout)
    phases.done("settings and data")

    # torch only now: bad parameters and bad data are refused in a fraction of a second.
    from ptychoreg.training import save_training, train_model

    phases.done("imports (torch, ours)")
    result = train_model(config, data, log=log, init_model=args.init_model)
    phases.done("training")
    out = Path(args.output_dir)
    save_training(out, result, config, data)
    phases.done("writing")
    log(f"wrote {out / 'model.pt'} and history.json in {time.perf_counter() - started:.2f} s")
    phases.write(args.timings_out, epoch_seconds=[round(s, 5) for s in result.epoch_seconds])
    return 0


main, cli = entry_points("ptycho-train", _main)


if __name__ == "__main__":
    cli()
