"""Ask DVC for JSON (metrics, params), with DVC's own analytics off and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ptychoreg.errors import PtychoError


def dvc_json(*args: str) -> dict:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    proc = subprocess.run([sys.executable, "-m", "dvc", *args, "--json"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise PtychoError(None, f"`dvc {' '.join(args)}` failed: {last}")
    try:
        return json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        raise PtychoError(None, f"`dvc {' '.join(args)}` printed no JSON") from None
