"""What every command shares: the process set-up, the error boundary (one line, exit codes), argument
parsing, the params default.

Every command, console script or `python -m`, runs its body through `run`, which first sets the process up
(`setup_process`: importing a module never does), then:
- bad input (a PtychoError, an unusable file, a bad flag): one line on stderr naming the file, key or flag
  and the problem, exit 2;
- anything else is a bug: one line saying so and where the full traceback was written, exit 1 (with
  PTYCHOREG_DEBUG=1 the traceback goes to stderr as well).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from ptychoreg.core import numerics
from ptychoreg.core.errors import PtychoError

EXIT_ERROR = 2  # expected failure: bad input, bad parameter, unusable file
EXIT_BUG = 1  # an internal error: a bug to report
DEBUG = "PTYCHOREG_DEBUG"  # "1": internal errors also print their traceback on stderr
MESSAGE_LIMIT = 400  # characters of one error line: a message never echoes an unbounded value
PROJECT_PARAMS = "params.yaml"  # the default of the harness commands: their sections live there only (no defaults)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's rule for bad input: a bad flag or value is one line and exit 2, not the
    whole usage text."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` on one line, at most `limit` characters."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _write_traceback(name: str) -> Path | None:
    """The current exception's traceback in a file of its own (the one line names it), or None."""
    try:
        folder = Path(tempfile.gettempdir()) / "ptychoreg-tracebacks"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        path.write_text(f"{name} {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}")
        return path
    except OSError:
        return None


def setup_process() -> None:
    """What an entry point does before anything loads numpy or torch (those libraries read it when they
    load): the pinned numerical environment and OpenMP's wait policy (ptychoreg.core.numerics), inherited
    by every child. The command modules import numpy and torch only inside their bodies, so `run` can do
    this first (tests/test_imports.py); a test session does it in tests/conftest.py."""
    numerics.pin()


def run(name: str, body: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Set the process up, then run a command body behind the error boundary (module docstring); return
    its exit code."""
    setup_process()
    try:
        return int(body(argv) or 0)
    except PtychoError as exc:
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{name}: error: {one_line(f'{where}{exc.strerror or exc}')}", file=sys.stderr)
    except MemoryError:
        print(f"{name}: error: out of memory: the inputs need more memory than this machine could give", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the boundary: anything else is a bug, said in one line
        path = _write_traceback(name)
        if os.environ.get(DEBUG) == "1":
            traceback.print_exc()
        where = f"full traceback in {path}" if path else "no traceback file could be written"
        print(f"{name}: internal error (a bug, please report it): {type(exc).__name__}: "
              f"{one_line(exc, 200)}; {where}", file=sys.stderr)
        return EXIT_BUG
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
    # pydantic (ptychoreg.core.config) loads here, not at the top: every command imports this module, and
    # those that read no settings (plots, export, report, outputs, canary) would pay its import.
    from ptychoreg.core.config import resolve_recipe, section_flags

    if args.recipe and not args.params:
        raise PtychoError(None, f"--recipe {args.recipe} needs --params, the file that holds it")
    params, source = load_params(args.params)
    return resolve_recipe(params, args.recipe, source, section_flags(args, sections))


def load_params(path: str | None) -> tuple[dict, str]:
    """The params file given with --params, or nothing (the built-in defaults)."""
    from ptychoreg.core.config import read_params  # pydantic: as in run_config

    if path is None:
        return {}, "defaults"
    return read_params(path), path


def log(message: str) -> None:
    print(message, flush=True)


def hide_cuda_unless(accelerator: str | None) -> None:
    """Nothing to do on CPU runs except make sure CUDA initialisation can't cost start-up time."""
    if accelerator in (None, "cpu"):
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
