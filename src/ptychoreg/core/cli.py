"""What every command shares: one-line errors, exit codes, the params.yaml default."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from ptychoreg.core.errors import PtychoError

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


def add_params_arg(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument("--params", default=default,
                        help=f"a params.yaml to read settings from (default: {default or 'none, the built-in defaults of ptychoreg.core.config; never an implicit ./params.yaml'})")


def add_recipe_args(parser: argparse.ArgumentParser, default: str | None = None, params: str | None = None) -> None:
    """--params and --recipe: the run a command does (a workflow command's flags override the recipe).
    The harness's commands name their defaults (params.yaml, the regression recipe); the workflow's own
    never read a params file they are not given."""
    add_params_arg(parser, params)
    parser.add_argument("--recipe", default=default,
                        help=f"a named run of the params file (its recipes: section); default: "
                             f"{default or 'the built-in defaults'}")


def run_config(args: argparse.Namespace, sections: tuple[str, ...]):
    """The run's Config: defaults, then --params/--recipe, then the flags of `sections`."""
    from ptychoreg.core.config import resolve_recipe, section_flags

    if args.recipe and not args.params:
        raise PtychoError(None, f"--recipe {args.recipe} needs --params, the file that holds it")
    params, source = load_params(args.params)
    return resolve_recipe(params, args.recipe, source, section_flags(args, sections))


def load_params(path: str | None) -> tuple[dict, str]:
    """The params file given with --params, or nothing (the built-in defaults)."""
    from ptychoreg.core.config import read_params

    if path is None:
        return {}, "defaults"
    return read_params(path), path


def log(message: str) -> None:
    print(message, flush=True)


def hide_cuda_unless(accelerator: str | None) -> None:
    """Nothing to do on CPU runs except make sure CUDA initialisation can't cost start-up time."""
    if accelerator in (None, "cpu"):
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
