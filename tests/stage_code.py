"""Which of our source files a command imports: the code a DVC stage running it depends on (test_deps.py
checks that each stage's closure lies inside the directories dvc.yaml declares).

Static: every `import ptychoreg...` / `from ptychoreg... import` in a module, at any depth (the CLIs import
lazily inside functions), followed transitively, with each package's `__init__.py`. A string constant
that names one of our modules in full (`"ptychoreg.cli.train"`, as the harness runs the CLIs with
`python -m`) counts as loaded too: a child process runs that code for the stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "ptychoreg"
PACKAGE_DIR = "src/ptychoreg"  # where its sources sit, as dvc.yaml names them


def _module_file(src: Path, name: str) -> Path | None:
    base = src / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(PACKAGE + "."):
            if all(part.isidentifier() for part in node.value.split(".")):
                names.add(node.value)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def import_closure(module: str, src: Path = Path("src"), files: tuple[Path, ...] = ()) -> set[Path]:
    """Source files (relative to the project root, i.e. `src`'s parent) that `python -m module` loads;
    with `files` (scripts outside the package, e.g. a test module), also what those import."""
    seen: set[Path] = set()
    todo = [module] if module else []
    for path in files:
        todo.extend(_imports(Path(path)))
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # The packages on the way (their __init__.py run first), then the module itself.
        for depth in range(1, len(parts) + 1):
            path = _module_file(src, ".".join(parts[:depth]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(_imports(path))
    root = src.parent
    return {p.relative_to(root) for p in seen}


def stage_code(cmd: str | list[str], root: Path = Path(".")) -> set[Path]:
    """Our source files a DVC stage's command(s) load: `python -m ptychoreg.X` modules, and for
    `python -m pytest ... tests/x.py` the test files with the conftest beside them."""
    found: set[Path] = set()
    for command in [cmd] if isinstance(cmd, str) else cmd:
        words = command.split()
        if "-m" not in words:
            continue
        module = words[words.index("-m") + 1]
        if module.startswith(PACKAGE + "."):
            found |= import_closure(module, root / "src")
        elif module == "pytest":
            tests = [root / w.split("::")[0] for w in words if w.split("::")[0].endswith(".py")]
            conftests = {t.parent / "conftest.py" for t in tests if (t.parent / "conftest.py").is_file()}
            found |= import_closure("", root / "src", tuple(tests) + tuple(conftests))
    return found
