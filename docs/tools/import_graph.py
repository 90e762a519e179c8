"""The import graph of src/pushmail, read with `ast` (nothing is imported).

Used two ways: `python docs/tools/import_graph.py > docs/import_graph.dot` writes the
package picture of docs/design.md (`make docs-graph` renders it), and
tests/test_import_graph.py walks the same module graph to fail on cycles and on imports
that cross a layer they must not cross.

Every `import` / `from ... import` counts, at module level and inside functions (a
function-level import is still a dependency, only a later one), and so do those under
`if TYPE_CHECKING:` unless `type_checking=False`: they never run, but a cycle through
them is still two modules that cannot be understood one without the other. The check
for I/O modules in the protocol core passes `type_checking=False`, since a type-only
import of asyncio loads nothing.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "pushmail"


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Module name -> file, for every .py file of the package."""
    out: dict[str, Path] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, type_checking: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if not type_checking and isinstance(child, ast.If) and _is_type_checking(child.test):
            # Only the else branch runs.
            for sub in child.orelse:
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    yield sub
                else:
                    yield from _imports(sub, type_checking)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        else:
            yield from _imports(child, type_checking)


def imported_names(
    module: str, path: Path, type_checking: bool = True, known: frozenset[str] = frozenset()
) -> set[str]:
    """Every absolute module name `module` imports (first-party and third-party).
    `from pkg import name` gives `pkg.name` when that is a module in `known`, else
    `pkg`."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in _imports(tree, type_checking):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = module.split(".")
            if not is_pkg:
                base = base[:-1]
            if node.level > 1:
                base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base)
            target = f"{prefix}.{node.module}" if node.module else prefix
        else:
            target = node.module or ""
        for alias in node.names:
            sub = f"{target}.{alias.name}"
            out.add(sub if sub in known else target)
    return out


def module_graph(src: Path = SRC, type_checking: bool = True) -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports. (Importing pkg.mod
    runs pkg/__init__ too; that edge is implied by the tree and left out.)"""
    files = module_files(src)
    known = frozenset(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        names = imported_names(module, path, type_checking, known)
        graph[module] = {name for name in names if name in files} - {module}
    return graph


def package_of(module: str) -> str:
    """`pushmail.server.serve` -> `net`; top-level modules are their own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, deps in graph.items():
        src_pkg = package_of(module)
        edges = out.setdefault(src_pkg, set())
        for dep in deps:
            dst_pkg = package_of(dep)
            if dst_pkg != src_pkg and dep != PACKAGE:
                edges.add(dst_pkg)
    return out


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The cycles of the graph, as Tarjan's components of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[set[str]] = []
    counter = 0

    def visit(root: str) -> None:
        # Iterative, so a deep import chain cannot hit the recursion limit.
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = []
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(sorted(graph.get(root, ())))))
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp: set[str] = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.add(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    comps.append(comp)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return comps


def to_dot(graph: dict[str, set[str]]) -> str:
    """The package graph as Graphviz source: an arrow A -> B means A imports B."""
    pkgs = package_graph(graph)
    lines = [
        "// Generated by docs/tools/import_graph.py (make docs-graph); do not edit.",
        "digraph pushmail_packages {",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
        '  edge [color="#555555"];',
    ]
    # The package's own __init__ and __main__ say nothing about the layers.
    shown = sorted(set(pkgs) - {PACKAGE, "__main__"})
    for pkg in shown:
        # Packages are boxes; single top-level modules (config.py, cli.py, ...) ellipses.
        shape = "box" if (SRC / PACKAGE / pkg).is_dir() else "ellipse"
        lines.append(f'  "{pkg}" [shape={shape}];')
    for pkg in shown:
        for dep in sorted(pkgs[pkg] & set(shown)):
            lines.append(f'  "{pkg}" -> "{dep}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(to_dot(module_graph()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
