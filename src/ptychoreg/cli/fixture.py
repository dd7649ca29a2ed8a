"""ptycho-fixture: derive the minimal deterministic fixture (and its JSON sidecar) from a dataset.

Criteria come from params.yaml `fixture:` and these flags override them. The fixture and sidecar are
written atomically; a refused or failed run leaves any previous fixture untouched.
"""

from __future__ import annotations

import argparse
import time

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, add_params_arg, entry_points, load_params, log
from ptychoreg.core.config import FixtureSpec, load_section, validated


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="ptycho-fixture", description=__doc__)
    p.add_argument("--source", required=True, help="canonical dataset (.npz)")
    p.add_argument("--output", help="fixture path (default: params fixture.output)")
    p.add_argument("--subset-size", type=int)
    p.add_argument("--strategy", choices=("stratified", "first"))
    p.add_argument("--metadata-out", help="sidecar JSON path (default: the fixture path with .json)")
    p.add_argument("--layout", choices=("NHW", "HWN"), help="source layout, overriding detection")
    p.add_argument("--metrics-out", help="also write the fixture metrics JSON here (e.g. metrics/fixture.json)")
    add_params_arg(p, default=PROJECT_PARAMS)
    return p


def _main(argv):
    args = parser().parse_args(argv)
    from ptychoreg.core.fileio import write_json
    from ptychoreg.harness.fixture import fixture_metrics, generate

    params, source = load_params(args.params)
    spec = load_section("fixture", params, source)
    overrides = {"subset_size": args.subset_size, "strategy": args.strategy, "output": args.output}
    if args.output and not args.metadata_out:
        overrides["sidecar"] = None  # beside the given output, not at the params' default place
    given = {k: v for k, v in overrides.items() if v is not None or k == "sidecar"}
    spec = validated(FixtureSpec, {**spec.model_dump(), **given}, "command line", "fixture")
    started = time.perf_counter()
    sidecar = generate(args.source, spec, output=spec.output, metadata_out=args.metadata_out, layout=args.layout)
    seconds = time.perf_counter() - started
    if args.metrics_out:
        write_json(args.metrics_out, fixture_metrics(sidecar))
    log(f"wrote {spec.output}: {spec.subset_size} patterns ({spec.strategy}), {sidecar['fixture']['bytes']:,} bytes, "
        f"sha256 {sidecar['fixture']['sha256'][:16]}..., coverage x {sidecar['coverage']['x']:.3f} "
        f"y {sidecar['coverage']['y']:.3f}, {seconds:.2f} s")
    return 0


main, cli = entry_points("ptycho-fixture", _main)


if __name__ == "__main__":
    cli()
