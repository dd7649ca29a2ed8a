"""The tools the harness drives, git and DVC: output captured, DVC's analytics off, a failure raised as one
line (the tool's last stderr line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ptychoreg.core.errors import PtychoError


def last_line(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr.strip().splitlines() or ["no output"])[-1]


def run_tool(tool: list[str], *args: str, cwd: Path | None = None, env: dict | None = None,
             name: str | None = None) -> subprocess.CompletedProcess:
    """`tool ARGS`, output captured; a failure raises one line: `name ARGS` (name: the tool's program by
    default) and the last stderr line."""
    proc = subprocess.run([*tool, *args], cwd=cwd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise PtychoError(None, f"`{name or tool[0]} {' '.join(args)}` failed: {last_line(proc)}")
    return proc


def git(*args: str, cwd: Path | None = None) -> str:
    return run_tool(["git"], *args, cwd=cwd).stdout.strip()


def dvc(*args: str) -> subprocess.CompletedProcess:
    return run_tool([sys.executable, "-m", "dvc"], *args, env=dict(os.environ, DVC_NO_ANALYTICS="1"), name="dvc")


def dvc_json(*args: str) -> dict:
    proc = dvc(*args, "--json")
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        raise PtychoError(None, f"`dvc {' '.join(args)}` printed no JSON") from None
