"""harness.load: what other processes and the hypervisor took while a gate measured; harness.contention's
competitor process."""

import os
import subprocess
import sys
import time

import pytest

from conftest import project_settings
from ptychoreg.harness.contention import Competitor
from ptychoreg.harness.drift import busy_measurements
from ptychoreg.harness.load import BUSY_OTHERS_SHARE, Load, from_record, observe

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="harness.load reads Linux's /proc/stat")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _until(condition) -> None:
    """Poll (an event, not a fixed wait) until `condition()` holds."""
    while not condition():
        time.sleep(0.01)


def test_a_busy_neighbour_is_seen():
    with Competitor() as competitor, observe() as load:
        _until(lambda: _cpu_seconds(competitor.proc.pid) >= 1.0)
    # one busy process: about one CPU's worth of the machine, whatever its size
    assert load.others_share > min(BUSY_OTHERS_SHARE, 0.5 / load.cpus) and load.busy, load.record()
    assert "BUSY" in load.describe()


def test_our_own_children_are_not_load():
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0:\n    pass\n"
    with observe() as load:
        subprocess.run([sys.executable, "-c", burn], check=True)
    assert load.others_share < BUSY_OTHERS_SHARE + 0.5 / load.cpus, load.record()
    assert load.wall_s >= 1.0


def test_the_competitor_is_gone_after_the_block():
    with Competitor() as competitor:
        pid = competitor.proc.pid
        assert competitor.proc.poll() is None
    assert competitor.proc.returncode is not None and competitor.proc.stdout.closed
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_a_stored_record_reads_back():
    load = Load(0.4, 0.0, cpus=2)
    assert from_record(load.record()).busy and from_record(load.record()).others_share == pytest.approx(0.4)
    assert from_record(Load(0.01, 0.06, cpus=2).record()).busy  # stolen time alone makes it busy
    assert not from_record(Load(0.01, 0.0, cpus=2).record()).busy
    assert from_record({}) is None and from_record({"others_share": None}) is None


def test_the_drift_gate_says_which_side_was_measured_on_a_busy_machine():
    settings = project_settings("drift", runtime_metrics={"metrics/regression.json": ["normalised.total.median"]})
    diff = {"metrics/regression.json": {
        "machine_load.others_share": {"old": 0.01, "new": 0.45},
        "machine_load.steal_share": {"old": 0.0, "new": 0.0},
        "machine_load.cpus": {"old": 2, "new": 2}}}
    notes = busy_measurements(diff, settings)
    assert len(notes) == 1 and "this run" in notes[0] and "45 %" in notes[0]
    diff["metrics/regression.json"]["machine_load.others_share"] = {"old": 0.3, "new": 0.02}
    assert ["baseline" in n for n in busy_measurements(diff, settings)] == [True]
    assert busy_measurements({}, settings) == []  # metrics from before the load was recorded
