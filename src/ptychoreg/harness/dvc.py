"""Ask DVC for JSON (metrics, params, status) or run it (repro), with DVC's own analytics off and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ptychoreg.core.errors import PtychoError


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`dvc ARGS`, output captured; with `check`, a failure raises one line: DVC's last stderr line."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise PtychoError(None, f"`dvc {' '.join(args)}` failed: {last_line(proc)}")
    return proc


def last_line(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr.strip().splitlines() or ["no output"])[-1]


def dvc_json(*args: str) -> dict:
    proc = dvc(*args, "--json")
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        raise PtychoError(None, f"`dvc {' '.join(args)}` printed no JSON") from None
