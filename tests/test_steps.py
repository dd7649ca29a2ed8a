"""Named steps: a process stops itself exactly where a test asked, and only when asked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from ptychoreg.core.steps import ANNOUNCE, STOP_AT

PROGRAM = "from ptychoreg.core.steps import step\nstep('one')\nprint('after one', flush=True)\nstep('two')\nprint('end')\n"


def _start(**env):
    return subprocess.Popen([sys.executable, "-c", PROGRAM], env=dict(os.environ, **env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def test_stops_at_the_named_step_and_goes_on_when_continued():
    proc = _start(**{STOP_AT: "two"})
    assert proc.stderr.readline() == f"{ANNOUNCE}two\n"
    # The line comes just before the stop: wait for the stop itself (an event), or a SIGCONT sent in
    # between would be lost and the process would stay stopped.
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP
    assert proc.stdout.readline() == "after one\n"  # it passed step one without stopping
    os.kill(proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=60)
    assert out == "end\n" and proc.returncode == 0


def test_a_stopped_process_can_be_killed_there():
    proc = _start(**{STOP_AT: "one"})
    assert proc.stderr.readline() == f"{ANNOUNCE}one\n"
    proc.kill()
    out, _ = proc.communicate(timeout=60)
    assert out == "" and proc.returncode == -signal.SIGKILL


def test_no_variable_no_stop():
    env = {k: v for k, v in os.environ.items() if k != STOP_AT}
    proc = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "after one\nend\n" and proc.stderr == ""

