"""Multi-session state checker: several clients on the same mailboxes doing random
STORE/EXPUNGE/APPEND/COPY/MOVE/FETCH/SEARCH/IDLE, each keeping its own model of the
selected mailbox from what the server told it (``state_model.py``) and checking it
after every response. Issue 14's proof that sessions see one consistent mailbox.

Prints one JSON line: for each server, commands per second, the error count and the
first errors. With ``--dovecot`` (the default when Dovecot is installed and we are
root), a private Debian Dovecot (``dovecot.py``) runs the same load in the same run::

    .venv/bin/python bench/state_check.py --seconds 30 --clients 8

The test suite runs a few seconds of it against pushmail only
(``tests/e2e/test_state_check.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from state_model import MailboxModel

MAILBOXES = ("StateA", "StateB")
SYSTEM = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft")
KEYWORDS = (
    *("$label1", "$label2", "$label3", "$label4", "$label5", "$Junk", "$NotJunk"),
    *("$Forwarded", "$MDNSent", "todo", "work", "later"),
    *(f"kw{i}" for i in range(12)),
)
_LITERAL_END = re.compile(rb"\{(\d+)\}$")
MAX_MESSAGES = 50  # per mailbox, roughly: above it clients delete more than they add


class ProtocolTrouble(Exception):
    """The connection cannot go on (closed, or a reply never came)."""


@dataclass
class Tally:
    commands: int = 0
    no: int = 0
    errors: list[str] = field(default_factory=list)
    no_replies: list[str] = field(default_factory=list)


class Client:
    """One connection, its model, and the random commands it sends."""

    def __init__(self, name: str, host: str, port: int, login: tuple[str, str], seed: int) -> None:
        self.name = name
        self.host, self.port = host, port
        self.login = login
        self.rng = random.Random(seed)
        self.model = MailboxModel(context=name)
        self.tally = Tally()
        self.mailbox = ""
        self.condstore = self.rng.random() < 0.5
        self.qresync = self.condstore and self.rng.random() < 0.5
        self._n = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    # -- wire -------------------------------------------------------------------
    async def _line(self, timeout: float = 20.0) -> bytes:
        assert self._reader is not None
        try:
            raw = await asyncio.wait_for(self._reader.readuntil(b"\r\n"), timeout)
            out = raw[:-2]
            while (m := _LITERAL_END.search(out)) is not None:
                data = await asyncio.wait_for(self._reader.readexactly(int(m.group(1))), timeout)
                rest = await asyncio.wait_for(self._reader.readuntil(b"\r\n"), timeout)
                out += b"\r\n" + data + rest[:-2]
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ProtocolTrouble(f"{self.name}: no response ({exc!r})") from None
        return out

    def _send(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    def _untagged(self, line: bytes) -> None:
        if line.startswith(b"* "):
            self.model.on_untagged(line)

    async def command(self, text: str, literal: bytes | None = None) -> bytes:
        """Send one command; feed every untagged response to the model as it comes;
        return the tagged line."""
        self._n += 1
        tag = f"{self.name}.{self._n}"
        self.model.begin_command(uid=text.startswith("UID "))
        if literal is None:
            self._send(f"{tag} {text}\r\n".encode())
        else:
            self._send(f"{tag} {text} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
        while True:
            line = await self._line()
            if line.startswith(tag.encode() + b" "):
                return self._tagged(text, line)
            self._untagged(line)

    def _tagged(self, text: str, line: bytes) -> bytes:
        self.tally.commands += 1
        status = line.split(b" ", 2)[1].upper()
        if status == b"BAD":
            self.tally.errors.append(f"{self.name}: BAD for {text!r}: {line[:160]!r}")
        elif status == b"NO":
            self.tally.no += 1
            verb = text.split(" (")[0].split(" {")[0]
            verb = " ".join(w for w in verb.split()[:2] if not w[0].isdigit())
            self.tally.no_replies.append(
                f"{verb} -> {line.split(b' ', 2)[2].decode('ascii', 'replace')}"
            )
        return line

    # -- session ----------------------------------------------------------------
    async def run(self, deadline: float) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        try:
            await self._line()  # greeting
            user, password = self.login
            if not (await self.command(f'LOGIN "{user}" "{password}"')).split()[1] == b"OK":
                raise ProtocolTrouble(f"{self.name}: login failed")
            if self.qresync:
                await self.command("ENABLE QRESYNC")
            elif self.condstore:
                await self.command("ENABLE CONDSTORE")
            await self.select(self.rng.choice(MAILBOXES))
            while time.monotonic() < deadline:
                await self.step()
            await self.command("LOGOUT")
        finally:
            self._writer.close()
            self.tally.errors.extend(self.model.errors)
            self.model.errors.clear()

    async def select(self, mailbox: str) -> None:
        self.model.reset()
        reply = await self.command(f"SELECT {mailbox}")
        self.model.selected = reply.split()[1] == b"OK"
        self.mailbox = mailbox if self.model.selected else ""
        await self.learn_uids()

    async def learn_uids(self) -> None:
        """What a client does after EXISTS: fetch UIDs and flags of the new ones."""
        first = self.model.first_unknown()
        if first is None or not self.model.selected:
            return
        before = self.model.exists
        reply = await self.command(f"FETCH {first}:* (UID FLAGS)")
        if reply.split()[1] == b"OK" and b"EXPUNGEISSUED" not in reply:
            self.model.fetched |= set(range(1, first))
            self.model.check_full_fetch(before)

    async def step(self) -> None:
        ops = [
            (self.store, 25),
            (self.fetch, 15),
            (self.search, 10),
            (self.noop, 6),
            (self.idle, 8),
            (self.append, 10 if self.model.exists < MAX_MESSAGES else 2),
            (self.copy, 5),
            (self.delete, 6 if self.model.exists < MAX_MESSAGES else 20),
            (self.reselect, 2),
        ]
        op = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        await op()
        await self.learn_uids()

    # -- random commands --------------------------------------------------------
    def _seqset(self) -> str | None:
        n = self.model.exists
        if n == 0:
            return None
        a = self.rng.randint(1, n)
        b = min(n, a + self.rng.randint(0, 4))
        return str(a) if a == b else f"{a}:{b}"

    def _uidset(self) -> str | None:
        uids = self.model.known_uids()
        if not uids:
            return None
        return ",".join(str(u) for u in sorted(self.rng.sample(uids, min(len(uids), 3))))

    def _flags(self) -> str:
        pool = SYSTEM + KEYWORDS
        return " ".join(self.rng.sample(pool, self.rng.randint(1, 3)))

    async def store(self) -> None:
        uid = self.rng.random() < 0.3
        where = self._uidset() if uid else self._seqset()
        if where is None:
            return
        mode = self.rng.choice(("+FLAGS", "-FLAGS", "FLAGS", "+FLAGS.SILENT", "-FLAGS.SILENT"))
        await self.command(f"{'UID ' if uid else ''}STORE {where} {mode} ({self._flags()})")

    async def fetch(self) -> None:
        if self.model.exists == 0:
            return
        choice = self.rng.random()
        if choice < 0.4:
            before = self.model.exists
            reply = await self.command("FETCH 1:* (UID FLAGS)")
            if reply.split()[1] == b"OK" and b"EXPUNGEISSUED" not in reply:
                self.model.check_full_fetch(before)
        elif choice < 0.7:
            where = self._seqset()
            items = "(FLAGS MODSEQ)" if self.condstore else "(FLAGS INTERNALDATE)"
            await self.command(f"FETCH {where} {items}")
        else:
            where = self._uidset()
            if where is not None:
                await self.command(f"UID FETCH {where} (FLAGS RFC822.SIZE)")

    async def search(self) -> None:
        key = self.rng.choice(
            ("ALL", "UNSEEN", "FLAGGED", f"KEYWORD {self.rng.choice(KEYWORDS)}", "DELETED")
        )
        uid = self.rng.random() < 0.5
        if self.rng.random() < 0.3:
            ret = self.rng.choice(("(MIN MAX COUNT)", "(ALL)", "(COUNT)"))
            await self.command(f"{'UID ' if uid else ''}SEARCH RETURN {ret} {key}")
        else:
            await self.command(f"{'UID ' if uid else ''}SEARCH {key}")

    async def noop(self) -> None:
        await self.command("NOOP")

    async def idle(self) -> None:
        self._n += 1
        tag = f"{self.name}.{self._n}"
        self.model.begin_command()
        self._send(f"{tag} IDLE\r\n".encode())
        while True:
            line = await self._line()
            if line.startswith(b"+"):
                break
            if line.startswith(tag.encode() + b" "):
                self._tagged("IDLE", line)
                return
            self._untagged(line)
        until = time.monotonic() + self.rng.uniform(0.02, 0.15)
        while (left := until - time.monotonic()) > 0:
            try:
                line = await asyncio.wait_for(self._line(left + 5), left)
            except TimeoutError:
                break
            self._untagged(line)
        self._send(b"DONE\r\n")
        while True:
            line = await self._line()
            if line.startswith(tag.encode() + b" "):
                self._tagged("IDLE", line)
                return
            self._untagged(line)

    async def append(self) -> None:
        box = self.rng.choice(MAILBOXES)
        subject = f"state check {self.name} {self._n}"
        raw = (
            f"From: checker@example.org\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{self.name}.{self._n}.{time.time_ns()}@example.org>\r\n\r\n"
            f"{'x' * self.rng.randint(10, 200)}\r\n"
        ).encode()
        flags = self._flags() if self.rng.random() < 0.6 else ""
        await self.command(f"APPEND {box} ({flags})", raw)

    async def copy(self) -> None:
        where = self._seqset()
        if where is None:
            return
        other = next(b for b in MAILBOXES if b != self.mailbox)
        verb = "MOVE" if self.rng.random() < 0.5 else "COPY"
        await self.command(f"{verb} {where} {other}")

    async def delete(self) -> None:
        where = self._seqset()
        if where is None:
            return
        await self.command(f"STORE {where} +FLAGS.SILENT (\\Deleted)")
        uids = self._uidset() if self.qresync or self.rng.random() < 0.3 else None
        await self.command(f"UID EXPUNGE {uids}" if uids else "EXPUNGE")

    async def reselect(self) -> None:
        await self.select(self.rng.choice(MAILBOXES))


async def run_check(
    host: str, port: int, login: tuple[str, str], clients: int, seconds: float, seed: int
) -> dict[str, object]:
    """Run ``clients`` random clients for ``seconds`` against one server; return the
    figures: commands, commands/s, errors (count and the first few), NO replies."""
    await _prepare(host, port, login)
    deadline = time.monotonic() + seconds
    group = [Client(f"c{i}", host, port, login, seed * 1000 + i) for i in range(clients)]
    started = time.monotonic()
    results = await asyncio.gather(*(c.run(deadline) for c in group), return_exceptions=True)
    elapsed = time.monotonic() - started
    errors = [e for c in group for e in c.tally.errors]
    errors += [f"client stopped: {r!r}" for r in results if isinstance(r, BaseException)]
    commands = sum(c.tally.commands for c in group)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "commands": commands,
        "commands_per_s": round(commands / elapsed, 1) if elapsed else 0.0,
        "errors": len(errors),
        "error_kinds": _kinds(errors),
        "first_errors": errors[:10],
        "no_replies": sum(c.tally.no for c in group),
        "no_kinds": _kinds([n for c in group for n in c.tally.no_replies]),
    }


def _kinds(errors: list[str]) -> dict[str, int]:
    """Errors counted by kind: the text without client name, numbers and quotes."""
    kinds: dict[str, int] = {}
    for e in errors:
        kind = re.sub(r"\d+", "N", e.split(": ", 1)[-1].split(" (after ")[0])[:80]
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:10])


async def _prepare(host: str, port: int, login: tuple[str, str]) -> None:
    """Create the shared mailboxes (an existing one is fine)."""
    prep = Client("prep", host, port, login, 0)
    prep._reader, prep._writer = await asyncio.open_connection(host, port)
    try:
        await prep._line()
        await prep.command(f'LOGIN "{login[0]}" "{login[1]}"')
        for box in MAILBOXES:
            await prep.command(f"CREATE {box}")
        await prep.command("LOGOUT")
    finally:
        prep._writer.close()


# ----------------------------------------------------------------------------- main

USER = ("checker@example.org", "checker-secret")


def _run_pushmail(args: argparse.Namespace, work: Path) -> dict[str, object]:
    from pushmail_server import PushmailInstance

    inst = PushmailInstance(work / "pushmail", [USER], workers=args.workers)
    inst.workdir.mkdir(parents=True)
    inst.add_users()
    inst.start()
    try:
        return asyncio.run(
            run_check("127.0.0.1", inst.imap_port, USER, args.clients, args.seconds, args.seed)
        )
    finally:
        inst.stop()


def _run_dovecot(args: argparse.Namespace, work: Path) -> dict[str, object]:
    import dovecot

    version = dovecot.ensure_installed()
    inst = dovecot.DovecotInstance(work / "dovecot", [USER], sessions=args.clients + 2)
    inst.workdir.mkdir(parents=True)
    inst.start()
    try:
        out = asyncio.run(
            run_check("127.0.0.1", inst.imap_port, USER, args.clients, args.seconds, args.seed)
        )
        return {"version": version, **out}
    finally:
        inst.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=None, help="pushmail serve --workers")
    p.add_argument("--dovecot", action=argparse.BooleanOptionalAction, default=None)
    args = p.parse_args(argv)
    if args.dovecot is None:
        args.dovecot = shutil.which("dovecot") is not None and os.geteuid() == 0
    work = Path(tempfile.mkdtemp(prefix="state-check-"))
    work.chmod(0o755)  # Dovecot's auth and imap processes run as other users
    out: dict[str, object] = {"benchmark": "state_check", "seed": args.seed}
    failed = False
    for name, fn in (("pushmail", _run_pushmail), ("dovecot", _run_dovecot)):
        if name == "dovecot" and not args.dovecot:
            continue
        try:
            out[name] = fn(args, work)
        except Exception as exc:  # one side failing still reports the other
            out[name] = {"error": repr(exc)}
            failed = True
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
