"""Cross-machine reproducibility check: a fixture rebuilt here must have the bytes recorded in git.

Compares the md5 of each DVC-tracked output of the fixture stage (the fixture and its sidecar) with the
one `dvc.lock` holds at a revision, and the fixture's sha256 with `metrics/fixture.json` there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ptychoreg.errors import PtychoError
from ptychoreg.fileio import file_digest

FIXTURE_STAGE = "make_fixture"


def committed_text(rev: str, path: str) -> str:
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PtychoError(path, f"not readable at revision {rev} ({(proc.stderr.strip().splitlines() or ['git failed'])[-1]})")
    return proc.stdout


def locked_md5(lock_text: str, fixture: str) -> str:
    import yaml

    lock = yaml.safe_load(lock_text) or {}
    for out in lock.get("stages", {}).get(FIXTURE_STAGE, {}).get("outs", []):
        if out.get("path") == fixture:
            return out["md5"]
    raise PtychoError("dvc.lock", f"stage {FIXTURE_STAGE} records no output {fixture}")


def verify_rebuilt_fixture(fixture: str, rev: str = "HEAD", sidecar: str | None = None) -> dict:
    if not Path(fixture).is_file():
        raise PtychoError(fixture, "fixture not found (run `dvc repro make_fixture`)")
    lock = committed_text(rev, "dvc.lock")
    for path in [fixture] + ([sidecar] if sidecar else []):
        expected_md5, md5 = locked_md5(lock, path), file_digest(path, "md5")
        if md5 != expected_md5:
            raise PtychoError(path, f"md5 {md5} differs from {expected_md5} in dvc.lock at {rev}: the fixture stage's "
                                    "output is not byte-reproducible on this machine")
    expected_sha = json.loads(committed_text(rev, "metrics/fixture.json"))["sha256"]
    md5, sha = file_digest(fixture, "md5"), file_digest(fixture)
    if sha != expected_sha:
        raise PtychoError(fixture, f"sha256 {sha[:16]}... differs from {expected_sha[:16]}... in metrics/fixture.json at {rev}")
    return {"md5": md5, "sha256": sha}
