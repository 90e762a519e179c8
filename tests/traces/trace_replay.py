"""Replaying RFC example transcripts (``*.txt`` in this directory) against the server.

Format, one item per line:

- ``C: <line>`` is sent as is (after substitution of ``${name}``); its tag is the
  first word (``DONE`` ends the pending IDLE).
- ``S: <line>`` is what the server must answer. Untagged lines are compared as a
  multiset (their order in the RFCs is often only illustrative); a tagged reply must
  come last. The human-readable text after ``OK``/``NO``/``BAD``/``BYE`` and a
  response code is not compared. ``${name}`` in an ``S:`` line captures a value
  (e.g. UIDVALIDITY, which a fresh store chooses itself) for later lines,
  ``${name*}`` one that may contain spaces;
  ``S: ...`` allows further untagged lines not shown.
- ``! <directive>`` changes the store as another client or the MTA would
  (``deliver``, ``deliver-text``, ``flags``, ``expunge``, ``create``, ``delete``, ``rename``,
  ``subscribe``, ``unsubscribe``, ``forget-expunges``, ``quota``), the client's transport
  (``compress``) or a server limit (``limit NAME VALUE``). ``S:`` lines after a
  directive are unsolicited output that must arrive (within the read deadline).
  A literal in a response is kept on its line, with ``⏎`` for each CRLF inside it.
- ``C2:`` / ``S2:`` (any digit) are a second connection, also logged in as alice,
  for the RFC examples that show two sessions.
- ``(...)`` in an ``S:`` line stands for any parenthesised data, as the RFCs write
  it for output they elide (e.g. ``* 4 FETCH (...)``).
- ``#`` starts a comment line. Each file starts logged in as alice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from imap_harness import LineClient, LiveServer

from pushmail.events.interfaces import ChangeKind, MailboxChanged
from pushmail.imap.parse_lexer import Reader, parse_sequence_set
from pushmail.store.interfaces import FlagMode, Quota, Store

_STATUS_TEXT = re.compile(r"^((?:\*|\S+) (?:OK|NO|BAD|BYE|PREAUTH))( \[[^\]]*\])?( .*)?$")
_VAR = re.compile(r"\$\{(\w+)(\*?)\}")


def normalize(line: str) -> str:
    """Drop the human-readable text of a status response; keep tag, status, code."""
    m = _STATUS_TEXT.match(line)
    if m is None:
        return line
    return m.group(1) + (m.group(2) or "")


@dataclass
class Step:
    kind: str  # "C", "!"
    text: str
    expect: list[str] = field(default_factory=list)
    more_ok: bool = False  # an "S: ..." line
    conn: int = 1  # which connection: "C2:" is 2


_LINE = re.compile(r"^([CS])(\d?): (.*)$")


def parse_trace(text: str) -> list[Step]:
    steps: list[Step] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if line.startswith("! "):
            steps.append(Step("!", line[2:]))
        elif m is not None and m.group(1) == "C":
            steps.append(Step("C", m.group(3), conn=int(m.group(2) or 1)))
        elif m is not None:
            if not steps or steps[-1].conn != int(m.group(2) or 1):
                raise ValueError(f"S: line without its C: or !: {line}")
            if m.group(3) == "...":
                steps[-1].more_ok = True
            else:
                steps[-1].expect.append(m.group(3))
        else:
            raise ValueError(f"not a trace line: {line!r}")
    return steps


class Replayer:
    def __init__(self, server: LiveServer, client: LineClient) -> None:
        self.server = server
        self.clients = {1: client}
        self.client = client  # the connection of the step being run
        self.vars: dict[str, str] = {}
        self.idle_tags: dict[int, str] = {}

    def close(self) -> None:
        for n, cl in self.clients.items():
            if n != 1:
                cl.sock.close()

    def use(self, conn: int) -> None:
        """Make ``conn`` the current connection, opening and logging it in first."""
        if conn not in self.clients:
            cl = LineClient(self.server.port)
            self.clients[conn] = cl
            cl.login()
        self.client = self.clients[conn]

    def subst(self, text: str) -> str:
        return _VAR.sub(lambda m: self.vars[m.group(1)], text)

    def pattern(self, expected: str) -> re.Pattern[str]:
        """A regex for one expected line: ``${x}`` captures (or must equal a known x)."""
        out, pos = [], 0
        for m in _VAR.finditer(expected):
            out.append(re.escape(expected[pos : m.start()]))
            name = m.group(1)
            known = self.vars.get(name)
            if known is not None:
                out.append(re.escape(known))
            elif m.group(2):  # ${name*}: any text, spaces included
                out.append(rf"(?P<{name}>.+)")
            else:
                out.append(rf"(?P<{name}>[^\s()\[\]]+)")
            pos = m.end()
        out.append(re.escape(expected[pos:]))
        text = "".join(out).replace(re.escape("(...)"), r"\(.*\)")
        return re.compile(text.replace("⏎", r"\r\n") + r"\Z", re.S)

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            self.use(step.conn)
            if step.kind == "!":
                self.directive(step.text)
                if step.expect:
                    self.check_unsolicited(step)
            else:
                self.command(step)

    def command(self, step: Step) -> None:
        text = self.subst(step.text)
        self.client.send(text.encode() + b"\r\n")
        if text.upper() == "DONE":
            tag = self.idle_tags[step.conn]
        else:
            tag = text.split(" ", 1)[0]
            if text.upper().endswith(" IDLE"):
                self.idle_tags[step.conn] = tag
        if step.expect and step.expect[-1].startswith("+"):
            actual = self.read_until(lambda ln: ln.startswith("+"))
        elif any(e.startswith(tag + " ") for e in step.expect):
            actual = self.read_until(lambda ln: ln.startswith(tag + " "))
        else:
            self.check_unsolicited(step)
            return
        self.compare(step, actual)

    def read_until(self, last: Callable[[str], bool]) -> list[str]:
        lines = []
        while True:
            line = self.client.line().decode("utf-8", "replace")
            lines.append(line)
            if last(line):
                return lines

    def check_unsolicited(self, step: Step) -> None:
        actual: list[str] = []
        while len(actual) < len(step.expect):
            try:
                actual.append(self.client.line().decode("utf-8", "replace"))
            except TimeoutError:
                raise AssertionError(f"no more output after {step.text!r}: {actual}") from None
        self.compare(step, actual)

    def compare(self, step: Step, actual: list[str]) -> None:
        """Match every expected line to a distinct actual line (tagged/continuation
        lines last in both); unmatched actual lines fail unless ``S: ...``."""
        exp, act = list(step.expect), [normalize(a) for a in actual]
        final_exp = exp.pop() if exp and not exp[-1].startswith("* ") else None
        final_act = act.pop() if final_exp is not None else None
        where = f"after {step.kind}: {step.text}\nactual:\n" + "\n".join(actual)
        for e in exp:
            pat = self.pattern(normalize(e))
            for i, a in enumerate(act):
                m = pat.match(a)
                if m is not None:
                    self.vars.update({k: v for k, v in m.groupdict().items() if v is not None})
                    del act[i]
                    break
            else:
                raise AssertionError(f"expected {e!r} {where}")
        if act and not step.more_ok:
            raise AssertionError(f"unexpected {act!r} {where}")
        if final_exp is not None:
            assert final_act is not None
            m = self.pattern(normalize(final_exp)).match(final_act)
            assert m is not None, f"expected {final_exp!r} {where}"
            self.vars.update({k: v for k, v in m.groupdict().items() if v is not None})

    # -- directives -------------------------------------------------------------
    def directive(self, text: str) -> None:
        words = self.subst(text).split()
        name, args = words[0], words[1:]
        if name == "deliver":
            for i in range(int(args[1]) if len(args) > 1 else 1):
                self.server.deliver(args[0], f"message {i}")
        elif name == "deliver-text":  # deliver-text BOX [--unpreviewed] body words, ⏎ = CRLF
            bare = len(args) > 1 and args[1] == "--unpreviewed"
            body = text.split(None, 3 if bare else 2)[-1] if len(args) > (2 if bare else 1) else ""
            self.server.deliver(args[0], "text", body.replace("⏎", "\r\n"), preview=not bare)
        elif name == "flags":
            mode: FlagMode = {"+": "add", "-": "remove", "=": "set"}[args[2]]  # type: ignore[assignment]
            flags = frozenset(args[3:])
            self._change(
                args[0], args[1], "flags", lambda st, b, u: st.store_flags(b, u, mode, flags)
            )
        elif name == "expunge":

            def gone(st: Store, box: int, uids: list[int]) -> object:
                st.store_flags(box, uids, "add", frozenset({"\\Deleted"}))
                return st.expunge(box, uids)

            self._change(args[0], args[1], "expunge", gone)
        elif name == "create":
            self._mailboxes(lambda st, uid: st.create_mailbox(uid, args[0]))
        elif name == "delete":
            self._mailboxes(lambda st, uid: st.delete_mailbox(uid, args[0]))
        elif name == "rename":
            self._mailboxes(lambda st, uid: st.rename_mailbox(uid, args[0], args[1]))
        elif name in ("subscribe", "unsubscribe"):
            uid = self.server.user.id
            on = name == "subscribe"
            self.server.store_call(lambda st: st.set_subscribed(uid, args[0], on))
            self.server.bus.publish(MailboxChanged(uid, 0, 0, "subscriptions"))
        elif name == "forget-expunges":  # as if the expunge history had expired
            self.server.store_call(lambda st: st.prune_expunged(-10.0))
        elif name == "limit":  # e.g. "limit notify_max_pending 0", for later sessions
            ctx = self.server.ctx
            ctx.limits = replace(ctx.limits, **{args[0]: int(args[1])})
        elif name == "quota":  # quota STORAGE MESSAGES: octets or "-" (no limit)
            lim = [None if a == "-" else int(a) for a in args[:2]]
            uid = self.server.user.id
            self.server.store_call(lambda st: st.set_quota(uid, Quota(lim[0], lim[1])))
        elif name == "compress":
            self.client.start_compression()
        else:
            raise ValueError(f"unknown directive {name}")

    def _mailboxes(self, fn: Callable[[Store, int], object]) -> None:
        uid = self.server.user.id
        self.server.store_call(lambda st: fn(st, uid))
        self.server.bus.publish(MailboxChanged(uid, 0, 0, "mailboxes"))

    def _change(
        self,
        mailbox: str,
        uidset: str,
        kind: ChangeKind,
        fn: Callable[[Store, int, list[int]], object],
    ) -> None:
        uid = self.server.user.id
        seqset = parse_sequence_set(Reader(uidset.encode()))

        def run(st: Store) -> int:
            box = st.get_mailbox(uid, mailbox)
            assert box is not None
            existing = st.uids(box.id)
            fn(st, box.id, seqset.select_from(existing, existing[-1] if existing else 0))
            after = st.get_mailbox_by_id(box.id)
            assert after is not None
            self.server.bus.publish(MailboxChanged(uid, box.id, after.highestmodseq, kind))
            return box.id

        self.server.store_call(run)


def replay(path: Path, tmp: Path) -> None:
    from imap_harness import live_server

    steps = parse_trace(path.read_text())
    with live_server(tmp) as server, LineClient(server.port) as client:
        client.login()
        replayer = Replayer(server, client)
        try:
            replayer.run(steps)
        finally:
            replayer.close()
