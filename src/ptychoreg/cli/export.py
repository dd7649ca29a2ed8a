"""ptycho-export: write a train + infer run as a Ptychodus product file (.npz), so the reconstruction opens
in Ptychodus: object, probe, probe positions and pixel geometry in metres, name, comments, losses.

Our data carry no physical units; pixel size, detector distance and photon energy come from the flags,
else from the dataset's metadata, else nominal values that the product's comments name.
"""

from __future__ import annotations

import argparse

from ptychoreg.core.cli import ArgumentParser, entry_points, log


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-export", description=__doc__)
    p.add_argument("--run-dir", required=True, help="folder with reconstruction.npz, model.pt and history.json")
    p.add_argument("--data", required=True, help="the dataset the run reconstructed (positions come from it)")
    p.add_argument("--output", required=True, help="the product file to write (.npz)")
    p.add_argument("--name", help="product name (default: the run folder's name)")
    p.add_argument("--pixel-size-m", type=float)
    p.add_argument("--detector-distance-m", type=float)
    p.add_argument("--photon-energy-ev", dest="photon_energy_eV", type=float)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.interop.ptychodus import export_run

    written = export_run(args.run_dir, args.data, args.output, name=args.name, pixel_size_m=args.pixel_size_m,
                         detector_distance_m=args.detector_distance_m, photon_energy_eV=args.photon_energy_eV)
    log(f"wrote {written['output']}: object {written['object_shape'][0]}x{written['object_shape'][1]}, "
        f"{written['positions']} positions" + (f"; nominal {', '.join(written['nominal'])}" if written["nominal"] else ""))
    return 0


main, cli = entry_points("ptycho-export", _main)


if __name__ == "__main__":
    cli()
