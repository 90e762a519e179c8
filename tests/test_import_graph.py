"""The shape of the code (docs/design.md, "Packages and imports"), read with `ast`.

No import cycle between modules or between packages; the protocol core (imap/)
imports no I/O and nothing of the layers above it; concrete stores, buses and push
databases are built only by their factories; no module over 600 lines; the package
picture of docs/design.md is what the source says today.

Imports are taken at module level and inside functions. For cycles, those under
`if TYPE_CHECKING:` count too (docs/tools/import_graph.py says why); for the core's
I/O they do not, since they load nothing.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def _tool() -> ModuleType:
    """docs/tools/import_graph.py, the walker shared with the docs picture."""
    path = ROOT / "docs" / "tools" / "import_graph.py"
    spec = importlib.util.spec_from_file_location("pushmail_import_graph", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ig = _tool()

# Cycles tolerated for now, each with the reason (none today: keep it that way).
KNOWN_CYCLES: list[frozenset[str]] = []

MAX_LINES = 600
# Modules allowed over MAX_LINES for now, each with the reason (none today).
SIZE_ALLOWANCE: set[str] = set()

IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "sqlite3"}
# What the protocol core may not import: the drivers and the wiring above it, the
# store and bus implementations (it sees store/interfaces, events/interfaces only),
# push, web, SMTP and the client.
CORE_FORBIDDEN = (
    "pushmail.net",
    "pushmail.transport",
    "pushmail.threads",
    "pushmail.server",
    "pushmail.supervisor",
    "pushmail.smtp",
    "pushmail.push",
    "pushmail.web",
    "pushmail.client",
    "pushmail.cli",
    "pushmail.store.sqlite",
    "pushmail.store.postgres",
    "pushmail.store.pg_",
    "pushmail.store.factory",
    "pushmail.events.unixsock",
    "pushmail.events.nats",
    "pushmail.events.local",
    "pushmail.events.factory",
)

# Concrete backends and the only modules that call their constructors: the
# factories (open_store, open_bus / open_publisher, open_push_db), and the
# Unix-socket bus for the publisher it is made of.
FACTORIES = {
    "SqliteStore": {"pushmail.store.factory"},
    "PostgresStore": {"pushmail.store.factory"},
    "UnixSocketBus": {"pushmail.events.factory"},
    "NatsBus": {"pushmail.events.factory"},
    "UnixSocketPublisher": {"pushmail.events.factory", "pushmail.events.unixsock"},
    "NatsPublisher": {"pushmail.events.factory"},
    "SqlitePushDB": {"pushmail.push.db_open"},
    "PostgresPushDB": {"pushmail.push.db_open"},
}


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    return [frozenset(c) for c in ig.strongly_connected(graph)]


def test_no_module_cycle() -> None:
    cycles = _cycles(ig.module_graph(SRC))
    new = [sorted(c) for c in cycles if not any(c <= known for known in KNOWN_CYCLES)]
    assert new == [], f"import cycles between modules: {new}"
    stale = [sorted(k) for k in KNOWN_CYCLES if not any(c & k for c in cycles)]
    assert stale == [], f"no longer a cycle, remove from KNOWN_CYCLES: {stale}"


def test_no_package_cycle() -> None:
    cycles = _cycles(ig.package_graph(ig.module_graph(SRC)))
    assert cycles == [], f"import cycles between packages: {[sorted(c) for c in cycles]}"


def test_the_walker_finds_cycles_and_function_level_imports(tmp_path: Path) -> None:
    """The checks above can fail: a cycle closed by an import inside a function, and
    one through TYPE_CHECKING, are both seen; a package cycle is seen too."""
    pkg = tmp_path / "pushmail"
    for sub in ("a", "b"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from pushmail.b import y\n")
    (pkg / "b" / "y.py").write_text("def f() -> None:\n    from pushmail.a.x import g\n")
    (pkg / "a" / "z.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import w\n"
    )
    (pkg / "a" / "w.py").write_text("from pushmail.a import z\n")
    graph = ig.module_graph(tmp_path)
    assert sorted(map(sorted, _cycles(graph))) == [
        ["pushmail.a.w", "pushmail.a.z"],
        ["pushmail.a.x", "pushmail.b.y"],
    ]
    assert _cycles(ig.package_graph(graph)) == [frozenset({"a", "b"})]
    runtime = ig.module_graph(tmp_path, type_checking=False)
    assert "pushmail.a.w" not in runtime["pushmail.a.z"]


def _core_modules() -> dict[str, Path]:
    return {m: p for m, p in ig.module_files(SRC).items() if m.startswith("pushmail.imap")}


def test_the_protocol_core_imports_no_io() -> None:
    """Nor does anything it imports of pushmail (its whole first-party closure)."""
    files = ig.module_files(SRC)
    graph = ig.module_graph(SRC, type_checking=False)
    seen: set[str] = set()
    todo = list(_core_modules())
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    bad = {
        module: sorted(n for n in names if n.split(".")[0] in IO_MODULES)
        for module in sorted(seen)
        if (names := ig.imported_names(module, files[module], type_checking=False))
    }
    assert {m: b for m, b in bad.items() if b} == {}


def test_the_protocol_core_imports_no_driver_backend_push_or_web() -> None:
    graph = ig.module_graph(SRC)
    bad = {
        module: sorted(d for d in graph[module] if d.startswith(CORE_FORBIDDEN))
        for module in _core_modules()
    }
    assert {m: b for m, b in bad.items() if b} == {}


def _constructions(path: Path) -> list[tuple[str, int]]:
    """(class, line) for each call of a FACTORIES class, by name, through an alias
    (`from ... import SqliteStore as S`), or as an attribute (`sqlite.SqliteStore`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    local = {name: name for name in FACTORIES}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in FACTORIES and alias.asname:
                    local[alias.asname] = alias.name
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in local:
            found.append((local[func.id], node.lineno))
        elif isinstance(func, ast.Attribute) and func.attr in FACTORIES:
            found.append((func.attr, node.lineno))
    return found


def test_backends_are_built_only_by_their_factories() -> None:
    """In src/ and bench/ (tests build them directly on purpose)."""
    files = dict(ig.module_files(SRC))
    files.update({f"bench.{p.stem}": p for p in sorted((ROOT / "bench").glob("*.py"))})
    bad = [
        f"{path.relative_to(ROOT)}:{line} builds {cls}"
        for module, path in files.items()
        for cls, line in _constructions(path)
        if module not in FACTORIES[cls]
    ]
    assert bad == []
    # And the check sees the factories' own calls, so it is looking.
    store_factory = SRC / "pushmail" / "store" / "factory.py"
    assert {cls for cls, _ in _constructions(store_factory)} == {"SqliteStore", "PostgresStore"}


def test_no_module_over_600_lines() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for p in sorted(SRC.rglob("*.py"))
    }
    over = {p: n for p, n in sizes.items() if n > MAX_LINES and p not in SIZE_ALLOWANCE}
    assert over == {}
    stale = sorted(p for p in SIZE_ALLOWANCE if sizes.get(p, 0) <= MAX_LINES)
    assert stale == [], f"within {MAX_LINES} lines now, remove from SIZE_ALLOWANCE: {stale}"


def test_the_package_picture_is_current() -> None:
    """docs/import_graph.dot is what the tool writes today (`make docs-graph`)."""
    committed = (ROOT / "docs" / "import_graph.dot").read_text(encoding="utf-8")
    assert committed == ig.to_dot(ig.module_graph(SRC)), "run `make docs-graph`"
