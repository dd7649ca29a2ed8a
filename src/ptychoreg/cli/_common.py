"""What every command shares: one-line errors, exit codes, the params.yaml default."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from ptychoreg.errors import PtychoError

EXIT_ERROR = 2  # expected failure: bad input, bad parameter, unusable file


def run(name: str, body: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a command body; expected errors become one line on stderr and exit code 2, never a traceback."""
    try:
        return int(body(argv) or 0)
    except PtychoError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{name}: error: {where}{exc.strerror or exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    return EXIT_ERROR


def entry_points(name: str, body: Callable[[list[str] | None], int | None]):
    """(main, cli) for a command: `main(argv)` returns the exit code (tests call it in process);
    `cli()` is the console-script and `python -m` entry: a normal interpreter exit, so atexit handlers,
    coverage and log flushing run."""

    def main(argv: list[str] | None = None) -> int:
        return run(name, body, argv)

    def cli() -> None:
        sys.exit(main())

    return main, cli


def add_params_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default=None,
                        help="a params.yaml to read settings from (default: none, the built-in defaults of "
                             "ptychoreg.config; never an implicit ./params.yaml)")


def load_params(path: str | None) -> tuple[dict, str]:
    """The params file given with --params, or nothing (the built-in defaults)."""
    from ptychoreg.config import read_params

    if path is None:
        return {}, "defaults"
    return read_params(path), path


def log(message: str) -> None:
    print(message, flush=True)


def hide_cuda_unless(accelerator: str | None) -> None:
    """Nothing to do on CPU runs except make sure CUDA initialisation can't cost start-up time."""
    if accelerator in (None, "cpu"):
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
