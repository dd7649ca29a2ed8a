"""The import graph and what importing does: the layers and the absence of cycles (import-linter's
contracts in pyproject.toml), importing any module changes nothing in the process, no command module
loads numpy or torch before its entry point has set the process up, and every package the code imports
is one pyproject.toml declares."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT

MODULES = sorted(
    ".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "src/ptychoreg").rglob("*.py"))

_PROCESS_STATE = """
import json, os, signal, sys
def state():
    umask = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("Umask:"))
    handlers = {s.name: str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD)}
    return {"environ": dict(os.environ), "umask": umask, "signals": handlers, "cwd": os.getcwd()}
"""


def _python(code: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, check=True,
                          env={k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "MKL_CBWR")})
    return proc.stdout


def test_the_import_contracts_hold():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert {c["type"] for c in contracts} == {"layers", "acyclic_siblings"}
    lint = subprocess.run([Path(sys.executable).with_name("lint-imports"), "--no-cache"], capture_output=True, text=True,
                          cwd=ROOT)
    assert lint.returncode == 0, lint.stdout[-3000:]
    assert f"Contracts: {len(contracts)} kept, 0 broken" in lint.stdout


def test_importing_any_module_changes_nothing_in_the_process():
    out = _python(_PROCESS_STATE + f"""
before = state()
import importlib
for name in {MODULES!r}:
    importlib.import_module(name)
print(json.dumps([before, state()]))
""")
    before, after = json.loads(out)
    assert after == before


def test_no_command_loads_numpy_or_torch_before_it_sets_the_process_up():
    """Each console script's and `python -m` harness entry's module imports only light modules, so `run`
    sets the numerical environment before any library that reads it loads."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entries = sorted({target.split(":")[0] for target in scripts.values()}
                     | {name for name in MODULES if name.startswith("ptychoreg.harness.")
                        and "__main__" in (ROOT / "src" / (name.replace(".", "/") + ".py")).read_text()})
    # One process imports them in turn and names the first that brings numpy or torch in (the ones after it
    # can only be judged once it is fixed).
    probe = ("import sys, importlib\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
             "    if {'numpy', 'torch'} & set(sys.modules):\n"
             "        print(name, sorted({'numpy', 'torch'} & set(sys.modules)))\n        break")
    assert _python(probe, *entries).strip() == ""


def _imported_packages(folder: Path) -> set[str]:
    """The top-level names of every absolute import in the .py files under `folder`."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names)


def _undeclared(modules: set[str], requirements: list[str]) -> list[str]:
    normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731 - PEP 503 names
    declared = {normal(re.split(r"[=<>\[ ;]", r, maxsplit=1)[0]) for r in requirements}
    distributions = importlib.metadata.packages_distributions()
    return sorted(m for m in modules if not declared & {normal(d) for d in distributions.get(m, [m])})


def test_every_package_the_code_imports_is_declared():
    """A package imported directly but installed only because another one needs it today disappears from a
    user's environment the day that other one stops needing it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    local = {path.stem for path in (ROOT / "tests").glob("*.py")}
    assert _undeclared(_imported_packages(ROOT / "src") - {"ptychoreg"}, project["dependencies"]) == []
    assert _undeclared(_imported_packages(ROOT / "tests") - {"ptychoreg"} - local,
                       project["dependencies"] + extras) == []
