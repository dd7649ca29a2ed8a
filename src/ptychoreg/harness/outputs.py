"""What DVC cannot say about outputs that travel: which machines their bytes are valid for.

Every output of the pipeline is the same bytes on every machine of the pinned set (ptychoreg.core.numerics),
except those `dvc.yaml` labels `host`: this machine's measurements (wall time, memory, the CPU's code
paths). DVC does the rest: `dvc pull` restores, `dvc repro` rebuilds and rewrites `dvc.lock` with the md5 of
what it built, `dvc status` says whether the workspace holds what the lock records. What is left here is
the comparison that needs the labels: each output that travels, in `dvc.lock` now against `dvc.lock` at a
revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import yaml
from dvc.exceptions import DvcException
from dvc.repo import Repo

from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.dvc import dvc_json, git

LOCK = "dvc.lock"


@dataclass(frozen=True)
class Output:
    stage: str
    path: str
    labels: frozenset = frozenset()  # `host`: a measurement of this machine; `timing`: its wall time or memory

    @property
    def travels(self) -> bool:
        return "host" not in self.labels


def pipeline(root: str | Path = ".") -> tuple[list[str], list[Output]]:
    """The stages, upstream first (otherwise in dvc.yaml's order), and every output they declare, from
    DVC's own index."""
    try:
        repo_handle = Repo(str(root))
    except DvcException as exc:  # not a DVC repository, or one DVC cannot read
        raise PtychoError(root, f"not a usable DVC repository ({str(exc)[:160]})") from None
    with repo_handle as repo:
        place = {stage: i for i, stage in enumerate(repo.index.stages)}
        upstream_first = nx.lexicographical_topological_sort(repo.index.graph.reverse(), key=lambda s: place.get(s, -1))
        stages = [s for s in upstream_first if getattr(s, "cmd", None)]
        outputs = [Output(s.addressing, str(o.def_path), frozenset(o.annot.labels or ())) for s in stages for o in s.outs]
    return [s.addressing for s in stages], outputs


def stages_with(order: list[str], outputs: list[Output], label: str) -> list[str]:
    """Stages, upstream first: `travel` those with an output that travels; `timing` those whose outputs all
    measure this machine, one its time or memory (what a new machine re-measures with `dvc repro -f -s`)."""
    def wanted(mine: list[Output]) -> bool:
        if label == "travel":
            return any(o.travels for o in mine)
        return bool(mine) and not any(o.travels for o in mine) and any(label in o.labels for o in mine)

    return [s for s in order if wanted([o for o in outputs if o.stage == s])]


def locked_md5s(lock_text: str) -> dict[tuple[str, str], str]:
    """(stage, path) -> md5 for every output a dvc.lock text records."""
    lock = yaml.safe_load(lock_text) or {}
    return {(stage, out["path"]): out.get("md5") for stage, entry in (lock.get("stages") or {}).items()
            for out in entry.get("outs") or []}


def differences(outputs: list[Output], rev: str) -> tuple[dict[str, str], list[str]]:
    """(`stage: path` -> what differs, for each output that travels whose workspace file is not what dvc.lock
    records (`dvc status`) or whose md5 in dvc.lock is not the one at `rev`; those not in the workspace,
    which are not compared)."""
    expected, actual = locked_md5s(git("show", f"{rev}:{LOCK}")), locked_md5s(Path(LOCK).read_text())
    changed = {(stage, path): what for stage, changes in dvc_json("status").items() for change in changes
               if isinstance(change, dict) for path, what in change.get("changed outs", {}).items()}
    found, absent = {}, []
    for out in (o for o in outputs if o.travels):
        key, name = (out.stage, out.path), f"{out.stage}: {out.path}"
        if changed.get(key) == "deleted":
            absent.append(name)
        elif key in changed:
            found[name] = "the workspace file does not match dvc.lock (dvc status)"
        elif expected.get(key) != actual.get(key):
            found[name] = f"md5 {actual.get(key)}, dvc.lock at {rev} has {expected.get(key)}"
    return found, absent
