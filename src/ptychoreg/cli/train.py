"""ptycho-train: train the physics-informed network on a dataset; write the model bundle and loss history.

Outputs in --output-dir: model.pt (the bundle), history.json (loss per epoch), loss_curve.png.
"""

from __future__ import annotations

import argparse
import time

from ptychoreg.cli._common import add_params_arg, entry_points, hide_cuda_unless, load_params, log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-train", description=__doc__)
    p.add_argument("--data", required=True, help="training dataset (.npz, data contract)")
    p.add_argument("--output-dir", required=True, help="folder for model.pt, history.json, loss_curve.png")
    p.add_argument("--layout", choices=("NHW", "HWN"), help="diffraction layout, overriding detection")
    add_params_arg(p)
    g = p.add_argument_group("training (override params.yaml sections model/train)")
    g.add_argument("--max-epochs", "--nepochs", dest="max_epochs", type=int)
    g.add_argument("--n-groups", "--n_groups", "--n-images", "--n_images", dest="n_groups", type=int,
                   help="groups to train on (images = groups x gridsize^2). --n-images is an alias with this "
                        "meaning, kept for the peer's scripts")
    g.add_argument("--gridsize", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--width", type=int, help="channels of the first encoder block")
    g.add_argument("--probe-big", action=argparse.BooleanOptionalAction, default=None,
                   help="predict the whole patch (default) or, with --no-probe-big, only its centre N/2")
    g.add_argument("--seed", type=int)
    g.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float)
    g.add_argument("--loss", choices=("poisson", "mae"))
    g.add_argument("--neighbours", type=int, help="K nearest neighbours groups are drawn from")
    g.add_argument("--group-sampling", choices=("random", "sequential"))
    g.add_argument("--val-fraction", type=float)
    g.add_argument("--threads", type=int)
    g.add_argument("--accelerator", choices=("cpu", "cuda", "auto"))
    return p


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    hide_cuda_unless(args.accelerator)
    started = time.perf_counter()

    from pathlib import Path

    from ptychoreg.config import build_config
    from ptychoreg.contract import load_npz

    params, params_source = load_params(args.params)
    train_keys = ("max_epochs", "n_groups", "batch_size", "seed", "learning_rate", "loss", "neighbours",
                  "group_sampling", "val_fraction", "threads", "accelerator")
    overrides = {
        "model": {"width": args.width, "gridsize": args.gridsize, "probe_big": args.probe_big},
        "train": {k: getattr(args, k) for k in train_keys},
    }
    config = build_config(params, overrides, where=params_source)
    data = load_npz(args.data, layout=args.layout)

    # torch only now: bad parameters and bad data are refused in a fraction of a second.
    from ptychoreg.training import save_training, train_model

    result = train_model(config, data, log=log)
    out = Path(args.output_dir)
    save_training(out, result, config, data)
    log(f"wrote {out / 'model.pt'}, history.json, loss_curve.png in {time.perf_counter() - started:.2f} s")
    return 0


main, cli = entry_points("ptycho-train", _main)


if __name__ == "__main__":
    cli()
