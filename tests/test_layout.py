"""provision/'s imports run one way: no cycle, no module importing one above it.

Every import in provision/ counts, at a module's top or inside a function (an import made late hides a
cycle, it does not remove it); only those under ``if TYPE_CHECKING:`` do not, as they never run. The rule:

- no cycle: no module reaches itself through the modules it imports;
- the layers, top down: the entry points (``provision.cli``, ``provision.console``), the commands
  (``provision.commands.*``), then the engine, the steps and the rest. Nothing but an entry point imports
  an entry point; nothing but an entry point or a command imports a command;
- a step (``provision.steps.*``) imports neither the runner that walks the steps (``provision.runner``),
  nor the emulator and served path (``provision.local.*``), nor the estimate (``provision.cost.*``);
- the emulator and served path (``provision.local.*``) do not import the runner;
- nothing in provision/ imports the maintainer's tools (``maintainer``: the AWS-call recorder), which
  drive the toolkit from outside the installed package.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = ("provision.cli", "provision.console")
COMMANDS = "provision.commands"
# (modules under this prefix, modules they may not import: these prefixes)
FORBIDDEN = (
    ("provision.steps", ("provision.runner", "provision.local", "provision.cost")),
    ("provision.local", ("provision.runner",)),
)
MAINTAINER = "maintainer"


def modules(root: Path) -> dict[str, Path]:
    """Every module of root's provision package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((root / "provision").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _typing_only(tree: ast.Module) -> set[int]:
    """The nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    return {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
            for inner in ast.walk(node)}


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of provision (and the maintainer's tools) that module ``name`` imports; ``from x import y``
    counts as x.y when that is a module, else as x."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _typing_only(tree)
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            prefix = ".".join([*base, *([node.module] if node.module else [])])
            targets |= {f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                        for alias in node.names}
    found = set()
    for target in targets:
        if _under(target, MAINTAINER):
            found.add(MAINTAINER)
            continue
        while target not in known and "." in target:  # a name inside a module: the module
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            found.add(target)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """A shortest cycle (a -> b -> ... -> a) through each module that reaches itself, each cycle once, named
    from its first module in sorted order."""
    found: dict[frozenset[str], list[str]] = {}
    for start in sorted(edges):
        cycle = _way_back(start, edges)
        if cycle is not None:
            found.setdefault(frozenset(cycle), cycle)
    return list(found.values())


def _way_back(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A shortest chain of imports from start back to start (breadth first), or None."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for other in sorted(edges.get(module, ())):
                if other == start:
                    return [*paths[module], start]
                if other not in paths:
                    paths[other] = [*paths[module], other]
                    following.append(other)
        frontier = following
    return None


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import the layers forbid, as "importer -> imported (why)"."""
    found = []
    for module, imported in sorted(edges.items()):
        for other in sorted(imported):
            why = _why_not(module, other)
            if why:
                found.append(f"{module} -> {other} ({why})")
    return found


def _why_not(module: str, other: str) -> str | None:
    if other == MAINTAINER:
        return "the maintainer's tools are outside the package"
    if other in ENTRY_POINTS and module not in ENTRY_POINTS:
        return "only an entry point imports an entry point"
    if _under(other, COMMANDS) and other != COMMANDS and module not in ENTRY_POINTS and not _under(module, COMMANDS):
        return "only an entry point or a command imports a command"
    for importer, never in FORBIDDEN:
        if _under(module, importer) and any(_under(other, prefix) for prefix in never):
            return f"{importer} never imports {', '.join(never)}"
    return None


def test_provision_has_no_import_cycle():
    edges = graph(ROOT)
    assert len(edges) > 60 and edges["provision.runner"]  # the scan sees the package and its imports
    assert cycles(edges) == [], " ; ".join(" -> ".join(cycle) for cycle in cycles(edges))


def test_no_module_of_provision_imports_one_above_it():
    edges = graph(ROOT)
    assert "provision.commands.deploy" in edges["provision.cli"]  # an entry point's imports are seen
    assert upward(edges) == []


def test_the_scan_finds_a_cycle_and_an_upward_import(tmp_path):
    """The checks themselves can fail: a late import closing a cycle, a step importing the runner, a command
    imported from the engine and the recorder imported from the emulator are each found and named."""
    files = {
        "provision/__init__.py": "",
        "provision/context.py": "from . import waits\n",
        "provision/lease.py": "from .context import Context\n",
        "provision/waits.py": "def f():\n    from .lease import held\n",
        "provision/runner.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .steps import api\n",
        "provision/policy.py": "import provision.commands.deploy\n",
        "provision/commands/__init__.py": "",
        "provision/commands/deploy.py": "from .. import runner\n",
        "provision/steps/__init__.py": "from . import api\n",
        "provision/steps/api.py": "from ..runner import deploy\nfrom .. import context\n",
        "provision/local/__init__.py": "",
        "provision/local/serve.py": "from maintainer import recording\nfrom ..steps.api import find\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    edges = graph(tmp_path)
    assert "provision.steps" not in edges["provision.runner"]  # only for the type checker: no edge
    assert cycles(edges) == [["provision.context", "provision.waits", "provision.lease", "provision.context"]]
    assert upward(edges) == [
        "provision.local.serve -> maintainer (the maintainer's tools are outside the package)",
        "provision.policy -> provision.commands.deploy (only an entry point or a command imports a command)",
        "provision.steps.api -> provision.runner (provision.steps never imports provision.runner, provision.local, "
        "provision.cost)",
    ]
