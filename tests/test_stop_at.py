"""tests/stop_at.py: a command stops itself exactly at the event a test names, and only there; the
workflow's code holds no hook for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import stop_at

PROGRAM = """import os, sys
from ptychoreg.core.cli import log
log("one")
print("after one", flush=True)
open(sys.argv[1], "w").close()
os.replace(sys.argv[1], sys.argv[1] + ".moved")
print("end")
"""


def _env(tmp_path: Path) -> dict:
    """The program beside the test's files, importable; ptychoreg as this process imports it."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))


def _start(tmp_path: Path, event: str) -> subprocess.Popen:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    return subprocess.Popen([sys.executable, stop_at.__file__, event, "program", str(tmp_path / "file")],
                            env=_env(tmp_path), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def test_stops_before_the_rename_and_goes_on_when_continued(tmp_path):
    proc = _start(tmp_path, "rename:file.moved")
    assert proc.stderr.readline() == f"{stop_at.ANNOUNCE}rename:file.moved\n"
    # The line comes just before the stop: wait for the stop itself (an event), or a SIGCONT sent in
    # between would be lost and the process would stay stopped.
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP
    assert (tmp_path / "file").is_file() and not (tmp_path / "file.moved").exists()  # stopped before the move
    os.kill(proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=60)
    assert out == "one\nafter one\nend\n" and proc.returncode == 0
    assert (tmp_path / "file.moved").is_file()


def test_a_process_stopped_after_a_log_line_can_be_killed_there(tmp_path):
    proc = _start(tmp_path, "log:one")
    assert proc.stderr.readline() == f"{stop_at.ANNOUNCE}log:one\n"
    proc.kill()
    out, _ = proc.communicate(timeout=60)
    assert out == "one\n" and proc.returncode == -signal.SIGKILL  # stopped before printing "after one"
    assert not (tmp_path / "file").exists()


def test_stops_after_a_function_returns(tmp_path, synthetic):
    data = synthetic()
    program = tmp_path / "loader.py"
    program.write_text("import sys\nfrom ptychoreg.core.contract import load_npz\nload_npz(sys.argv[1])\nprint('loaded')\n")
    proc = subprocess.Popen([sys.executable, stop_at.__file__, "return:ptychoreg.core.contract.load_npz", "loader",
                             str(data)], env=_env(tmp_path),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stderr.readline() == f"{stop_at.ANNOUNCE}return:ptychoreg.core.contract.load_npz\n"
    proc.kill()
    out, _ = proc.communicate(timeout=60)
    assert out == "" and proc.returncode == -signal.SIGKILL


def test_an_event_that_never_happens_never_stops(tmp_path):
    proc = _start(tmp_path, "rename:elsewhere")
    out, err = proc.communicate(timeout=60)
    assert out == "one\nafter one\nend\n" and stop_at.ANNOUNCE not in err and proc.returncode == 0
