"""Every security event name used in src/ has a row in docs/operations.md's
"## Security log" table (the table is the interface a fail2ban filter relies on)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _called_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def _is_seclog_report(call: ast.Call) -> bool:
    """``seclog.report(...)`` or ``report(...)`` imported from it; not another
    object's ``report`` method (``conncap.ExhaustionLog.report`` takes an exception)."""
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr == "report" and isinstance(f.value, ast.Name) and f.value.id == "seclog"
    return isinstance(f, ast.Name) and f.id == "report"


def _literal_choices(node: ast.expr) -> list[str]:
    """The event names of ``"a"`` or ``"a" if cond else "b"``; [] for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _literal_choices(node.body), _literal_choices(node.orelse)
        return body + orelse if body and orelse else []
    return []


def _parsed() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path)))
        for path in sorted((ROOT / "src" / "pushmail").rglob("*.py"))
        if path.name != "seclog.py"
    ]


def events_in_src() -> dict[str, str]:
    """event name -> where it is used. The event of a ``report(...)`` call must be a
    string literal (or a choice of two), or a parameter of the function around the
    call, whose own callers then pass literals (a helper such as ``_abuse(event)``);
    anything else is an error, since it could not be checked."""
    found: dict[str, str] = {}
    wrappers: dict[str, tuple[int, str]] = {}  # helper name -> (argument index, param)
    modules = _parsed()
    for where_file, tree in modules:
        helpers: dict[int, tuple[str, int, str]] = {}  # id(call) -> helper it is in
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                params = [a.arg for a in func.args.args if a.arg not in ("self", "cls")]
                for call in ast.walk(func):
                    first = call.args[0] if isinstance(call, ast.Call) and call.args else None
                    if isinstance(first, ast.Name) and first.id in params:
                        helpers[id(call)] = (func.name, params.index(first.id), first.id)
        for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call)]:
            if not _is_seclog_report(call) or not call.args:
                continue
            if id(call) in helpers:
                name, index, param = helpers[id(call)]
                wrappers[name] = (index, param)
                continue
            first = call.args[0]
            if isinstance(first, ast.Attribute) and first.attr == "event":
                # The driver carrying out the connection machine's ``Report(event, …)``
                # effect: the names are checked where each ``Report`` is made.
                wrappers["Report"] = (0, "event")
                continue
            where = f"{where_file}:{call.lineno}"
            names = _literal_choices(call.args[0])
            assert names, f"{where}: event name must be a string literal"
            for name in names:
                found.setdefault(name, where)
    for where_file, tree in modules:
        for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call)]:
            wrapper = wrappers.get(_called_name(call))
            if wrapper is None:
                continue
            index, param = wrapper
            where = f"{where_file}:{call.lineno}"
            given = [k.value for k in call.keywords if k.arg == param]
            arg = call.args[index] if len(call.args) > index else (given or [None])[0]
            names = _literal_choices(arg) if arg is not None else []
            assert names, f"{where}: event name must be a string literal"
            for name in names:
                found.setdefault(name, where)
    return found


def documented_events() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("\n## Security log\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M))


def test_every_security_event_is_documented() -> None:
    used = events_in_src()
    assert {"auth-failed", "auth-limited", "relay-denied"} <= set(used)  # the scan works
    missing = {name: where for name, where in used.items() if name not in documented_events()}
    assert not missing, f"undocumented security events (add rows to docs/operations.md): {missing}"
