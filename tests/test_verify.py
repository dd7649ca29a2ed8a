from __future__ import annotations

import pytest

from ptychoreg.errors import PtychoError
from ptychoreg.harness.verify import locked_md5, verify_rebuilt_fixture

LOCK = """schema: '2.0'
stages:
  make_fixture:
    cmd: python -m ptychoreg.cli.fixture
    outs:
    - path: tests/fixtures/f.npz
      hash: md5
      md5: 0123456789abcdef0123456789abcdef
      size: 10
"""


def test_locked_md5():
    assert locked_md5(LOCK, "tests/fixtures/f.npz") == "0123456789abcdef0123456789abcdef"
    with pytest.raises(PtychoError, match="records no output other.npz"):
        locked_md5(LOCK, "other.npz")


@pytest.mark.slow
def test_rebuilt_fixture_matches_head(fixture_path, monkeypatch):
    from conftest import ROOT

    monkeypatch.chdir(ROOT)  # git show reads the repository of the working directory
    hashes = verify_rebuilt_fixture(str(fixture_path.relative_to(ROOT)), "HEAD")
    assert len(hashes["sha256"]) == 64


def test_missing_fixture_refused(tmp_path):
    with pytest.raises(PtychoError, match="fixture not found"):
        verify_rebuilt_fixture(str(tmp_path / "nope.npz"))
