"""The QRESYNC invariant (RFC 7162): a client that keeps a replica of INBOX, misses
deliveries, flag changes and expunges made by others while disconnected, and then
reconnects with ``SELECT INBOX (QRESYNC (...))`` ends with exactly the server's state.
Hypothesis drives random interleavings; the replica also checks every sequence number
the server uses against its own numbering while connected.

Sessions are the real ``Session`` objects run as the driver runs them
(``handlers.run_command``), on one real SQLite store.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import SessionClient, add_message, new_store

from pushmail.imap.parse_lexer import Reader, parse_sequence_set
from pushmail.imap.types import SequenceSet

_FETCH = re.compile(r"^\* (\d+) FETCH \((.*)\)$")
_FLAGS = re.compile(r"FLAGS \(([^)]*)\)")
_UID = re.compile(r"UID (\d+)")
_MODSEQ = re.compile(r"MODSEQ \((\d+)\)")
_VANISHED = re.compile(r"^\* VANISHED (\(EARLIER\) )?(\S+)$")
_EXISTS = re.compile(r"^\* (\d+) EXISTS$")
_HIGHEST = re.compile(r"^\* OK \[HIGHESTMODSEQ (\d+)\]")
FLAGS = ("\\Seen", "\\Flagged", "\\Answered", "$Label")


def _tmp_base() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


class Replica:
    """What a QRESYNC client keeps: UIDVALIDITY, a MODSEQ and UID -> flags."""

    def __init__(self) -> None:
        self.uidvalidity = 0
        self.modseq = 0
        self.flags: dict[int, frozenset[str]] = {}
        self.exists = 0

    def seq_of(self, uid: int) -> int:
        return sorted(self.flags).index(uid) + 1

    def apply(self, lines: list[str]) -> None:
        """Apply server output in order, checking sequence numbers as it goes."""
        for line in lines:
            if m := _VANISHED.match(line):
                gone = set(parse_sequence_set(Reader(m.group(2).encode())).iter_within(2**16))
                if not m.group(1):  # live VANISHED: each was in the mailbox for us
                    unknown = gone - set(self.flags)  # announced by EXISTS, not fetched
                    assert len(unknown) <= self.exists - len(self.flags), line
                    self.exists -= len(gone)
                for uid in gone:
                    self.flags.pop(uid, None)
            elif m := _EXISTS.match(line):
                self.exists = int(m.group(1))
            elif m := _HIGHEST.match(line):
                self.modseq = int(m.group(1))
            elif m := _FETCH.match(line):
                self._fetch(int(m.group(1)), m.group(2), line)
            assert "EXPUNGE" not in line, line  # QRESYNC: VANISHED only

    def _fetch(self, seq: int, body: str, line: str) -> None:
        uid_m, modseq_m = _UID.search(body), _MODSEQ.search(body)
        assert uid_m is not None and modseq_m is not None, line  # QRESYNC: always both
        uid = int(uid_m.group(1))
        self.modseq = max(self.modseq, int(modseq_m.group(1)))
        flags_m = _FLAGS.search(body)
        if uid in self.flags:
            assert seq == self.seq_of(uid), (line, sorted(self.flags))
        if flags_m is not None:
            words = flags_m.group(1).split()
            self.flags[uid] = frozenset(w for w in words if w != "\\Recent")
        else:
            assert uid in self.flags, line  # a bare MODSEQ echo is for a known message


class ResyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(dir=_tmp_base()))
        self.store, self.user = new_store(self.dir)
        box = self.store.get_mailbox(self.user.id, "INBOX")
        assert box is not None
        self.inbox = box.id
        self.other = SessionClient(self.store, self.user)
        self.other.cmd("SELECT INBOX")
        self.client: SessionClient | None = None
        self.replica = Replica()
        self.connect(with_known=False)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the client -------------------------------------------------------------
    def _run(self, text: str) -> list[str]:
        assert self.client is not None
        lines = self.client.cmd(text)
        assert lines[-1].split()[1] == "OK", lines
        self.replica.apply(lines)
        return lines

    def _catch_up_new(self) -> None:
        """After EXISTS: fetch what is new (a QRESYNC client's usual next step)."""
        r = self.replica
        if r.exists > len(r.flags):
            first = max(r.flags, default=0) + 1
            self._run(f"UID FETCH {first}:* (UID FLAGS MODSEQ)")
        assert r.exists == len(r.flags)

    @rule(with_known=st.booleans())
    def connect(self, with_known: bool) -> None:
        self.client = SessionClient(self.store, self.user)
        self._run("ENABLE QRESYNC")
        r = self.replica
        if r.uidvalidity:
            known = SequenceSet.from_ints(sorted(r.flags)).encode() if r.flags else ""
            extra = f" {known}" if with_known and known else ""
            self._run(f"SELECT INBOX (QRESYNC ({r.uidvalidity} {r.modseq}{extra}))")
        else:
            lines = self._run("SELECT INBOX")
            uv = next(ln for ln in lines if "UIDVALIDITY" in ln)
            r.uidvalidity = int(re.findall(r"\d+", uv)[0])
            if r.exists:
                self._run("UID FETCH 1:* (UID FLAGS MODSEQ)")
        self._catch_up_new()
        self.check_equal()

    @precondition(lambda self: self.client is not None)
    @rule()
    def disconnect(self) -> None:
        self.client = None

    @precondition(lambda self: self.client is not None)
    @rule()
    def noop(self) -> None:
        self._run("NOOP")
        self._catch_up_new()
        self.check_equal()

    @precondition(lambda self: self.client is not None and self.replica.flags)
    @rule(data=st.data(), flag=st.sampled_from(FLAGS), sign=st.sampled_from("+-"))
    def client_store(self, data: st.DataObject, flag: str, sign: str) -> None:
        uids = data.draw(st.lists(st.sampled_from(sorted(self.replica.flags)), min_size=1))
        silent = data.draw(st.booleans())
        items = f"{sign}FLAGS{'.SILENT' if silent else ''} ({flag})"
        before = dict(self.replica.flags)
        self._run(f"UID STORE {SequenceSet.from_ints(sorted(set(uids))).encode()} {items}")
        if silent:  # the client applies its own silent change locally
            for uid in set(uids) & set(before):
                if uid in self.replica.flags:
                    cur = self.replica.flags[uid]
                    self.replica.flags[uid] = cur | {flag} if sign == "+" else cur - {flag}
        self._catch_up_new()

    # -- everyone else ----------------------------------------------------------
    @rule(n=st.integers(1, 3))
    def deliver(self, n: int) -> None:
        for i in range(n):
            add_message(self.store, self.inbox, f"m{i}")

    @rule(data=st.data(), flag=st.sampled_from(FLAGS), sign=st.sampled_from("+-"))
    def other_store(self, data: st.DataObject, flag: str, sign: str) -> None:
        self.other.cmd("NOOP")
        n = self.other.session.view.exists if self.other.session.view else 0
        if n:
            seqs = data.draw(st.lists(st.integers(1, n), min_size=1, max_size=4))
            self.other.cmd(f"STORE {','.join(map(str, seqs))} {sign}FLAGS.SILENT ({flag})")

    @rule(data=st.data())
    def other_expunge(self, data: st.DataObject) -> None:
        self.other.cmd("NOOP")
        n = self.other.session.view.exists if self.other.session.view else 0
        if n:
            seqs = data.draw(st.lists(st.integers(1, n), min_size=1, max_size=3))
            self.other.cmd(f"STORE {','.join(map(str, seqs))} +FLAGS.SILENT (\\Deleted)")
            self.other.cmd("EXPUNGE")

    @rule()
    def forget_expunges(self) -> None:
        """The server's expunge memory runs out (``expunge_memory_days``)."""
        self.store.prune_expunged(-10)

    # -- the invariant ----------------------------------------------------------
    def check_equal(self) -> None:
        truth = {m.uid: m.flags for m in self.store.list_messages(self.inbox)}
        assert self.replica.flags == truth

    @invariant()
    def modseq_never_ahead(self) -> None:
        box = self.store.get_mailbox_by_id(self.inbox)
        assert box is not None
        assert self.replica.modseq <= box.highestmodseq


ResyncMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQresyncInvariant = ResyncMachine.TestCase
