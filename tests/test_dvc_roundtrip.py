"""The fixture travels through DVC: push to a scratch remote, fresh clones pull it back byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import FIXTURE_METRICS, FIXTURE_REL, ROOT
from ptychoreg.core.fileio import file_digest

pytestmark = pytest.mark.slow


def _run(*args, cwd):
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, args))}: {proc.stdout}{proc.stderr}"
    return proc


def _clone(tmp_path, name, remote):
    clone = tmp_path / name
    _run("git", "clone", "-q", str(ROOT), str(clone), cwd=tmp_path)
    _run(sys.executable, "-m", "dvc", "remote", "add", "--local", "scratch", str(remote), cwd=clone)
    return clone


def test_push_then_pull_in_a_fresh_clone(tmp_path, fixture_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    publisher = _clone(tmp_path, "publisher", remote)
    # The publisher uses this checkout's cache, where `dvc repro` left the fixture.
    _run(sys.executable, "-m", "dvc", "cache", "dir", "--local", str(ROOT / ".dvc" / "cache"), cwd=publisher)
    _run(sys.executable, "-m", "dvc", "push", "-r", "scratch", FIXTURE_REL, cwd=publisher)
    assert any(p.is_file() for p in remote.rglob("*"))

    consumer = _clone(tmp_path, "consumer", remote)
    assert not (consumer / FIXTURE_REL).exists()
    _run(sys.executable, "-m", "dvc", "pull", "-r", "scratch", FIXTURE_REL, cwd=consumer)
    pulled = consumer / FIXTURE_REL
    assert file_digest(pulled) == json.loads(FIXTURE_METRICS.read_text())["sha256"] == file_digest(fixture_path)
