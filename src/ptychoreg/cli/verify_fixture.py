"""ptycho-verify-fixture: check that the fixture on disk has the md5 (dvc.lock) and sha256
(metrics/fixture.json) committed at a revision, and its sidecar the md5 there, i.e. that a rebuild here
reproduced the same bytes."""

from __future__ import annotations

import argparse

from ptychoreg.cli._common import entry_points, log


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ptycho-verify-fixture", description=__doc__)
    p.add_argument("--fixture", default="tests/fixtures/pytorch_integration/minimal_dataset_v1.npz")
    p.add_argument("--sidecar", default="tests/fixtures/pytorch_integration/minimal_dataset_v1.json",
                   help="the fixture's JSON sidecar, also byte-reproducible ('' to skip)")
    p.add_argument("--rev", default="HEAD")
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.harness.verify import verify_rebuilt_fixture

    hashes = verify_rebuilt_fixture(args.fixture, args.rev, sidecar=args.sidecar or None)
    log(f"{args.fixture}: md5 {hashes['md5']} and sha256 {hashes['sha256'][:16]}... match {args.rev}"
        + (f"; {args.sidecar} matches its md5 there" if args.sidecar else ""))
    return 0


main, cli = entry_points("ptycho-verify-fixture", _main)


if __name__ == "__main__":
    cli()
