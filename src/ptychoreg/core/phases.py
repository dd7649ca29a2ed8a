"""The wall seconds of a command's phases, and its own peak memory.

A command times its phases (data, imports, training, ...) and, given `--timings-out`, writes them to that
JSON file; the regression harness reads it (`harness.runner.read_timings`) to say where each second of a
run goes. Wall seconds never go into a command's outputs, which are the same bytes on every run.
"""

from __future__ import annotations

import json
import os
import resource
import time


def own_peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program (MB): VmHWM of its own image, for
    a command that reports itself (the reference). `getrusage` would report more when the parent was
    larger, since the kernel carries the parent's peak across fork and exec; VmHWM does not."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: KiB on Linux, close enough


class Phases:
    """Wall seconds of a command's phases, in the order they end."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self.last
        self.last = now

    def write(self, path: str | os.PathLike | None, **extra) -> None:
        """The phases (and `extra` timings) as JSON at `path`, with this process's own peak memory;
        nothing when `path` is None."""
        if path is None:
            return
        from ptychoreg.core.fileio import write_text  # numpy: the commands import this module before set-up

        record = {"phases": {k: round(v, 5) for k, v in self.seconds.items()}, "peak_rss_mb": round(own_peak_rss_mb(), 1), **extra}
        write_text(path, json.dumps(record, indent=1) + "\n")
