"""Run a Python module as a command and stop it at an exact point, so a test can kill or inspect it there
without a sleep: `python tests/stop_at.py EVENT MODULE ARGS...`.

At EVENT the process writes `stop-at: EVENT` to stderr and stops itself (SIGSTOP). Whoever reads that line
knows where the process is: it can kill it there (SIGKILL ends a stopped process) or, once it has seen the
stop (`os.waitpid(pid, os.WUNTRACED)`), let it go on with SIGCONT. The events are seen from outside the
workflow's code, which holds no test hooks:

  return:MODULE.FUNCTION   FUNCTION has returned (the first time)
  log:TEXT                 the command has logged a line starting with TEXT (ptychoreg.core.cli.log)
  rename:NAME              os.replace is about to move something onto a path named NAME
"""

from __future__ import annotations

import functools
import importlib
import os
import runpy
import signal
import sys

ANNOUNCE = "stop-at: "


def _stop(event: str) -> None:
    sys.stderr.write(f"{ANNOUNCE}{event}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGSTOP)


def _wrap(owner, attribute: str, before=None, after=None) -> None:
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapped(*args, **kwargs):
        if before:
            before(*args, **kwargs)
        result = original(*args, **kwargs)
        if after:
            after(*args, **kwargs)
        return result

    setattr(owner, attribute, wrapped)


def arm(event: str) -> None:
    """Install the observer of `event` before the command's modules import what it wraps."""
    kind, _, what = event.partition(":")
    once = [False]

    def fire(condition: bool) -> None:
        if condition and not once[0]:
            once[0] = True
            _stop(event)

    if kind == "return":
        module, _, function = what.rpartition(".")
        _wrap(importlib.import_module(module), function, after=lambda *a, **k: fire(True))
    elif kind == "log":
        _wrap(importlib.import_module("ptychoreg.core.cli"), "log",
              after=lambda message, *a, **k: fire(str(message).startswith(what)))
    elif kind == "rename":
        _wrap(os, "replace", before=lambda source, target, *a, **k: fire(os.path.basename(target) == what))
    else:
        raise SystemExit(f"stop_at: unknown event {event!r} (return:, log: or rename:)")


if __name__ == "__main__":
    event, module, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.argv[:] = [module, *args]
    arm(event)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
