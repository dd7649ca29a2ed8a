"""Outputs that travel: which stages a `dvc pull` restored, and whether rebuilt outputs have the bytes
`dvc.lock` records.

Every output of the pipeline is the same bytes on every machine of the pinned set (ptychoreg.core.numerics),
except those `dvc.yaml` labels `host`: this machine's measurements (wall time, memory, the CPU's code
paths). So the team remote can hold what `dvc.lock` names, and a rebuild anywhere in the set can be
checked against it output by output. DVC does the hashing: a rebuild rewrites `dvc.lock` with the md5 of
what it built, which is compared with `dvc.lock` at a revision; `dvc status` says whether the workspace
still holds what the lock records.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ptychoreg.core.errors import PtychoError
from ptychoreg.harness.dvc import dvc, dvc_json, last_line

HOST_LABEL = "host"
TIMING_LABEL = "timing"  # a host measurement of wall time or memory: re-measured on a new machine
LOCK = "dvc.lock"


@dataclass(frozen=True)
class Output:
    stage: str
    path: str
    host: bool  # labelled `host` in dvc.yaml: a measurement of this machine, never compared
    timing: bool = False  # labelled `timing` too: wall time or memory


@dataclass(frozen=True)
class Verdict:
    output: Output
    expected: str | None  # md5 in dvc.lock at the revision
    actual: str | None  # md5 in dvc.lock now
    workspace_ok: bool  # the workspace holds what dvc.lock records now (dvc status)

    @property
    def matched(self) -> bool:
        return self.output.host or (self.expected is not None and self.expected == self.actual and self.workspace_ok)

    def describe(self) -> str:
        if self.output.host:
            return "host measurement, not compared"
        if self.expected is None:
            return "not in dvc.lock at the revision"
        if not self.workspace_ok:
            return "DIFFERS: the workspace file does not match dvc.lock (dvc status)"
        if self.expected != self.actual:
            return f"DIFFERS: md5 {self.actual}, dvc.lock has {self.expected}"
        return f"matches ({self.actual})"


def pipeline(root: str | Path = ".") -> tuple[list[str], list[Output]]:
    """The stages in run order (upstream first, otherwise as dvc.yaml lists them) and every output they
    declare, from DVC's own index."""
    import networkx as nx
    from dvc.repo import Repo

    from dvc.exceptions import DvcException

    try:
        repo_handle = Repo(str(root))
    except DvcException as exc:  # not a DVC repository, or one DVC cannot read
        raise PtychoError(root, f"not a usable DVC repository ({str(exc)[:160]})") from None
    with repo_handle as repo:
        place = {stage: i for i, stage in enumerate(repo.index.stages)}
        upstream_first = nx.lexicographical_topological_sort(repo.index.graph.reverse(), key=lambda s: place.get(s, -1))
        stages = [s for s in upstream_first if getattr(s, "cmd", None)]
        order = [s.addressing for s in stages]
        outputs = [Output(s.addressing, str(o.def_path), HOST_LABEL in (o.annot.labels or []),
                          TIMING_LABEL in (o.annot.labels or [])) for s in stages for o in s.outs]
    return order, outputs


def locked_md5s(lock_text: str) -> dict[tuple[str, str], str]:
    """(stage, path) -> md5 for every output a dvc.lock text records."""
    import yaml

    lock = yaml.safe_load(lock_text) or {}
    return {(stage, out["path"]): out.get("md5") for stage, entry in (lock.get("stages") or {}).items()
            for out in entry.get("outs") or []}


def committed_text(rev: str, path: str) -> str:
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PtychoError(path, f"not readable at revision {rev} ({(proc.stderr.strip().splitlines() or ['git failed'])[-1]})")
    return proc.stdout


def stale_stages(stages: list[str] | None = None) -> dict[str, dict[str, dict[str, str]]]:
    """Stages `dvc repro` would rebuild: stage -> {"deps"/"outs"/"params"/...: {path: what changed}}."""
    status = dvc_json("status", *(stages or []))
    stale = {}
    for stage, changes in status.items():
        found = stale.setdefault(stage, {})
        for change in changes:
            if isinstance(change, dict):
                for kind, paths in change.items():
                    found.setdefault(kind.replace("changed ", ""), {}).update(paths)
            else:
                found.setdefault(str(change), {})
    return stale


def reasons(changes: dict[str, dict[str, str]]) -> str:
    """One line: what `dvc status` found changed for a stage."""
    return "; ".join(f"{kind} " + ", ".join(f"{path} {what}" for path, what in paths.items()) if paths else kind
                     for kind, paths in changes.items())


def reproducible_stages(order: list[str], outputs: list[Output]) -> list[str]:
    """Stages with at least one output that must travel (not `host`)."""
    return [s for s in order if any(o.stage == s and not o.host for o in outputs)]


def timing_stages(order: list[str], outputs: list[Output]) -> list[str]:
    """Stages that only measure this machine's time and memory: every output `host`, one `timing`
    (regress, the sensitivity cells and table, the report; not golden_spread or mutation)."""
    return [s for s in order if (mine := [o for o in outputs if o.stage == s])
            and all(o.host for o in mine) and any(o.timing for o in mine)]


def rebuild(stages: list[str], log: Callable[[str], None] = print) -> None:
    """`dvc repro -f -s` each stage, upstream first: rebuilt from the deps in the workspace."""
    for stage in stages:
        log(f"rebuilding {stage}")
        proc = dvc("repro", "-f", "-s", stage, check=False)
        if proc.returncode != 0:
            sys.stdout.write(proc.stdout[-4000:])  # the stage's own output, for the person reading
            raise PtychoError(None, f"`dvc repro -f -s {stage}` failed: {last_line(proc)}")


def verify(stages: list[str], outputs: list[Output], rev: str) -> list[Verdict]:
    """Each output of `stages` against dvc.lock at `rev`."""
    expected = locked_md5s(committed_text(rev, LOCK))
    actual = locked_md5s(Path(LOCK).read_text())
    dirty = stale_stages(stages)
    verdicts = []
    for out in (o for o in outputs if o.stage in stages):
        changed = out.path in dirty.get(out.stage, {}).get("outs", {})
        verdicts.append(Verdict(out, expected.get((out.stage, out.path)), actual.get((out.stage, out.path)), not changed))
    return verdicts


def table(verdicts: list[Verdict]) -> str:
    width = max(len(f"{v.output.stage}: {v.output.path}") for v in verdicts) if verdicts else 0
    return "\n".join(f"  {f'{v.output.stage}: {v.output.path}':<{width}}  {v.describe()}" for v in verdicts)
