"""Every security event name used in src/ has a row in docs/operations.md's
"## Security log" table (the table is the interface a fail2ban filter relies on)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _report_calls(tree: ast.AST) -> list[ast.Call]:
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name == "report" and node.args:
                calls.append(node)
    return calls


def _literal_choices(node: ast.expr) -> list[str]:
    """The event names of ``"a"`` or ``"a" if cond else "b"``; [] for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _literal_choices(node.body), _literal_choices(node.orelse)
        return body + orelse if body and orelse else []
    return []


def events_in_src() -> dict[str, str]:
    """event name -> where it is used. An event given as anything but string
    literals (or a choice between them) is an error: it could not be checked."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "pushmail").rglob("*.py")):
        if path.name == "seclog.py":
            continue
        for call in _report_calls(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            names = _literal_choices(call.args[0])
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
