"""Cached outputs hold nothing that depends on where or when they were built (issue #33).

DVC restores a stage's outputs from the cache on any machine, so the bytes of model.pt, history.json,
reconstruction.npz, summary.json and quality.json must depend only on the inputs: the same tiny run (train,
a warm-started gridsize-2 train, infer; in process, relative paths, as the stages run from the repo root)
built in two folders with different absolute paths, the second one "a year later", gives the same bytes,
and nothing in them names an absolute path, this host, this user or a date.
"""

from __future__ import annotations

import getpass
import io
import json
import re
import socket
import time
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import save_npz, synthetic_arrays
from ptychoreg.cli import infer, train

OUTPUTS = ["train/model.pt", "train/history.json", "refine/model.pt", "refine/history.json",
           "infer/reconstruction.npz", "infer/summary.json", "infer/quality.json"]
A_YEAR = 366 * 24 * 3600.0
DATE = re.compile(r"(19|20)\d\d-[01]\d-[0-3]\d|\d\d:\d\d:\d\d")


def _build(root: Path, monkeypatch, shift: float) -> dict[str, bytes]:
    root.mkdir(parents=True)
    save_npz(root / "data.npz", synthetic_arrays(n=16, size=16))
    monkeypatch.chdir(root)
    real_time = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real_time() + shift)  # zip members, mtimes, any "now"
        common = ["--data", "data.npz", "--width", "2", "--max-epochs", "1", "--batch-size", "4"]
        assert train.main([*common, "--output-dir", "runs/train"]) == 0
        assert train.main([*common, "--output-dir", "runs/refine", "--init-model", "runs/train/model.pt",
                           "--gridsize", "2", "--n-groups", "8"]) == 0
        assert infer.main(["--model", "runs/refine/model.pt", "--data", "data.npz", "--output-dir", "runs/infer",
                           "--gridsize", "2"]) == 0
    return {name: (root / "runs" / name).read_bytes() for name in OUTPUTS}


def _strings_and_numbers(value, where=""):
    """Every (where, leaf) of a JSON-like structure, keys included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{where}.{k}", k
            yield from _strings_and_numbers(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _strings_and_numbers(v, f"{where}[{i}]")
    elif not isinstance(value, torch.Tensor):
        yield where, value


def _machine_facts(roots: list[Path]) -> list[re.Pattern]:
    """The build folders, this host's name and this user's name (as whole words), as patterns."""
    facts = [re.escape(str(r)) for r in roots] + [re.escape(str(r.resolve())) for r in roots]
    words = [socket.gethostname(), getpass.getuser()]
    facts += [rf"\b{re.escape(w)}\b" for w in words if len(w) >= 3]
    return [re.compile(f) for f in facts]


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        first = tmp_path_factory.mktemp("here") / "a"
        second = tmp_path_factory.mktemp("elsewhere") / "deeper" / "b"
        builds = (_build(first, mp, 0.0), _build(second, mp, A_YEAR))
    finally:
        mp.undo()
    return builds, [first, second]


@pytest.mark.parametrize("name", OUTPUTS)
def test_outputs_are_the_same_bytes_wherever_and_whenever_built(two_builds, name):
    """Catches an output recording an absolute path, the cwd, a staging folder's name or the build time."""
    (first, second), _ = two_builds
    assert first[name] == second[name], f"{name} differs between two builds of the same run"


@pytest.mark.parametrize("name", [n for n in OUTPUTS if n.endswith((".json", ".pt"))])
def test_no_output_names_a_place_a_host_a_user_or_a_date(two_builds, name):
    """Catches a JSON or bundle record holding an absolute path, hostname, user, date or Unix timestamp."""
    (first, _), roots = two_builds
    if name.endswith(".json"):
        record = json.loads(first[name])
    else:
        record = torch.load(io.BytesIO(first[name]), weights_only=True)
        record = {k: v for k, v in record.items() if k != "state_dict"}
    facts = _machine_facts(roots)
    for where, leaf in _strings_and_numbers(record):
        if isinstance(leaf, str):
            assert not leaf.startswith(("/", "~")) and not re.match(r"^[A-Za-z]:[\\/]", leaf), (name, where, leaf)
            assert not any(fact.search(leaf) for fact in facts), (name, where, leaf)
            assert not DATE.search(leaf), (name, where, leaf)
        elif isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
            assert not 1.0e9 <= leaf <= 2.5e9, (name, where, leaf)  # seconds since 1970: 2001-2049


def test_npz_members_carry_no_build_time(two_builds):
    """Catches reconstruction.npz written with np.savez (zip members stamped with the time of writing)."""
    (first, _), _ = two_builds
    with zipfile.ZipFile(io.BytesIO(first["infer/reconstruction.npz"])) as archive:
        stamps = {info.date_time for info in archive.infolist()}
        names = archive.namelist()
    assert names == sorted(names) and {"object.npy", "mask.npy", "positions.npy"} <= set(names)
    assert len(stamps) == 1 and next(iter(stamps))[0] < 1990, stamps


def test_a_bundle_is_the_same_bytes_on_another_machine_of_the_pinned_set(tmp_path, monkeypatch):
    """Catches a bundle recording a fact that differs between machines of the pinned set: the interpreter's
    patch release (the set pins major.minor), the host's name, the user, the CPU count."""
    import getpass
    import os
    import platform
    import socket

    import numpy as np

    from ptychoreg.core.config import Config
    from ptychoreg.core.model.bundle import save_bundle
    from ptychoreg.core.model.network import PtychoNet

    torch.manual_seed(0)
    config = Config.model_validate({"model": {"width": 2}})
    model = PtychoNet(size=16, **config.model.model_dump())

    def build(path: Path) -> bytes:
        save_bundle(path, model, np.ones((16, 16), np.complex64), config=config.to_dict(), legacy={"N": 16},
                    norm_factor=1.5, intensity_scale=2.0, extra={"training": {"data": "data.npz"}})
        return path.read_bytes()

    here = build(tmp_path / "model.pt")
    major, minor, patch = platform.python_version_tuple()
    other = str(int(patch) + 1) if patch.isdigit() else "0"
    with monkeypatch.context() as elsewhere:
        elsewhere.setattr(platform, "python_version_tuple", lambda: (major, minor, other))
        elsewhere.setattr(platform, "python_version", lambda: f"{major}.{minor}.{other}")
        elsewhere.setattr(platform, "node", lambda: "another-host")
        elsewhere.setattr(socket, "gethostname", lambda: "another-host")
        elsewhere.setattr(getpass, "getuser", lambda: "someone-else")
        elsewhere.setattr(os, "cpu_count", lambda: 96)
        there = build(tmp_path / "there" / "model.pt")
    assert here == there, "the same model, saved on another machine of the pinned set, gives other bytes"
