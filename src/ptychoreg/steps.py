"""Named steps a process announces, so tests can stop it at an exact point instead of after a sleep.

With `PTYCHOREG_STOP_AT=<name>` in the environment, the process writes `ptychoreg-step: <name>` to
stderr when it reaches that step and stops itself (SIGSTOP). Whoever waits for that line knows where the
process is, and can kill it there (SIGKILL ends a stopped process) or, once its parent has seen it stop
(`os.waitpid(pid, os.WUNTRACED)`), let it go on with SIGCONT. Without the variable a step costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import sys

STOP_AT = "PTYCHOREG_STOP_AT"
ANNOUNCE = "ptychoreg-step: "


def step(name: str) -> None:
    if os.environ.get(STOP_AT) == name:
        sys.stderr.write(f"{ANNOUNCE}{name}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSTOP)
