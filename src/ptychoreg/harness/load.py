"""Was the machine busy while we measured? The CPU time other processes took, and the time the hypervisor
stole, over a measurement: what a timing gate reports beside its verdict, so a slowdown that came from a
neighbour is not read as one of ours.

Linux only (/proc/stat); elsewhere `observe` reports nothing. Our own share is this process's CPU time
plus its waited-for children's (os.times), so a gate that runs its commands as children and waits for
them counts none of its own work as load.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Iterator

# A measurement is reported as taken on a busy machine beyond these shares of the machine's CPU capacity.
BUSY_OTHERS_SHARE = 0.10
BUSY_STEAL_SHARE = 0.05


def _cpu_jiffies() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of all CPUs since boot, or None where /proc/stat is not there."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + idle + iowait + steal


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class Load:
    """What the machine did besides our measurement, as shares of its CPU capacity (cpus x wall seconds)."""

    others_share: float | None = None  # CPU time of every other process
    steal_share: float | None = None  # time the hypervisor gave our CPUs to other guests
    wall_s: float = 0.0
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    @property
    def busy(self) -> bool:
        return (self.others_share or 0) > BUSY_OTHERS_SHARE or (self.steal_share or 0) > BUSY_STEAL_SHARE

    def record(self) -> dict:
        return {"others_share": None if self.others_share is None else round(self.others_share, 4),
                "steal_share": None if self.steal_share is None else round(self.steal_share, 4),
                "busy": self.busy, "cpus": self.cpus}

    def describe(self) -> str:
        if self.others_share is None:
            return "machine load not observed (no /proc/stat)"
        state = "BUSY" if self.busy else "quiet"
        return (f"machine {state} during the measurement: other processes used {100 * self.others_share:.0f} % of "
                f"its {self.cpus} CPUs, the hypervisor stole {100 * self.steal_share:.0f} %"
                + (" (timings from a shared machine: a slowdown may be a neighbour's)" if self.busy else ""))


def from_record(record: dict | None) -> Load | None:
    """The Load a stored `Load.record()` (a metrics file's) describes, or None when there is none."""
    if not record or record.get("others_share") is None:
        return None
    return Load(record["others_share"], record.get("steal_share") or 0.0, cpus=int(record.get("cpus") or 1))


@contextlib.contextmanager
def observe() -> Iterator[Load]:
    """Measure the machine's other load over the block; the yielded Load is filled in when the block ends."""
    load = Load()
    before, own_before, started = _cpu_jiffies(), _own_cpu_s(), time.perf_counter()
    try:
        yield load
    finally:
        after, own, wall = _cpu_jiffies(), _own_cpu_s() - own_before, time.perf_counter() - started
        load.wall_s = wall
        if before is not None and after is not None and wall > 0:
            hz = os.sysconf("SC_CLK_TCK")
            capacity = load.cpus * wall
            load.others_share = max(0.0, ((after[0] - before[0]) / hz - own) / capacity)
            load.steal_share = max(0.0, (after[1] - before[1]) / hz / capacity)
