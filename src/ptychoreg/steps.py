"""Where a process is: named steps it announces, and the wall seconds of its phases.

Steps: so tests can stop a process at an exact point instead of after a sleep.

With `PTYCHOREG_STOP_AT=<name>` in the environment, the process writes `ptychoreg-step: <name>` to
stderr when it reaches that step and stops itself (SIGSTOP). Whoever waits for that line knows where the
process is, and can kill it there (SIGKILL ends a stopped process) or, once its parent has seen it stop
(`os.waitpid(pid, os.WUNTRACED)`), let it go on with SIGCONT. Without the variable a step costs one
dictionary lookup.

Phases: a command times its phases (data, imports, training, ...) and logs them as one `phases {json}`
line at the end; the regression harness reads it (`harness.runner.read_phases`) to say where each second
of a run goes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

STOP_AT = "PTYCHOREG_STOP_AT"
ANNOUNCE = "ptychoreg-step: "


def step(name: str) -> None:
    if os.environ.get(STOP_AT) == name:
        sys.stderr.write(f"{ANNOUNCE}{name}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSTOP)


PHASES = "phases "  # the log line's prefix


class Phases:
    """Wall seconds of a command's phases, in the order they end."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self.last
        self.last = now

    def line(self) -> str:
        return PHASES + json.dumps({k: round(v, 5) for k, v in self.seconds.items()})
