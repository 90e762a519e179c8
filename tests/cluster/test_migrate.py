"""``pushmail migrate --to postgresql://…``: a client that knew the SQLite store
reconnects to a node on the PostgreSQL copy and, with QRESYNC, learns nothing new
(no VANISHED, no FETCH): same UIDVALIDITY, UIDs, MODSEQs and expunge history."""

from __future__ import annotations

import re

from cluster_node import Imap, Node, code_value, pushmail

from conftest import PASSWORD, Cluster
from pushmail.cli import main

USER = "carol@example.org"


def test_migrated_store_needs_no_resync(cluster: Cluster) -> None:
    home = cluster.root / "single"
    sqlite, unix = f"sqlite://{home}/pushmail.sqlite3", f"unix://{home}/events"
    single = Node(home, sqlite, unix)
    home.mkdir()
    lines = f"{USER}:{{PLAIN}}{PASSWORD}\n".encode()
    pushmail(home, sqlite, unix, "user", "import", "-", stdin=lines)
    single.start()
    for n in range(6):
        single.deliver(USER, f"m{n}")
    client = Imap(single.imap, USER, PASSWORD)
    client.ok("ENABLE QRESYNC")
    client.ok("SELECT INBOX")
    client.ok("UID STORE 2 +FLAGS (\\Seen $Work)")
    client.ok("UID STORE 3 +FLAGS (\\Deleted)")
    client.ok("EXPUNGE")
    client.ok("CREATE Archive")
    client.ok("SUBSCRIBE Archive")
    selected = client.ok("SELECT INBOX")
    uidvalidity = code_value(selected, "UIDVALIDITY")
    modseq = code_value(selected, "HIGHESTMODSEQ")
    uidnext = code_value(selected, "UIDNEXT")
    known = client.uids()
    client.close()
    single.stop()
    rules = '{"only_from": ["boss@example.com"]}'
    pushmail(home, sqlite, unix, "alerts", "rules", USER, "--set", rules)

    out = pushmail(home, sqlite, unix, "migrate", "--to", cluster.store)
    assert "6 messages" not in out and "5 messages" in out, out  # one was expunged
    # The copy refuses to mix stores: a second run into the same database fails.
    assert main(["migrate", "--to", cluster.store, "--data-dir", str(home)]) == 65

    # The push database went along: the user's rules are read from PostgreSQL now.
    moved = pushmail(home, cluster.store, cluster.bus, "alerts", "rules", USER)
    assert "boss@example.com" in moved, moved
    node = cluster.node()  # on PostgreSQL and NATS
    client = Imap(node.imap, USER, PASSWORD)
    client.ok("ENABLE QRESYNC")
    known_set = ",".join(map(str, known))
    resync = client.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq} {known_set}))")
    assert [line for line in resync if b"VANISHED" in line or b"FETCH" in line] == []
    assert code_value(resync, "HIGHESTMODSEQ") == modseq
    assert code_value(resync, "UIDNEXT") == uidnext
    assert client.uids() == known
    flags = b" ".join(client.ok("UID FETCH 2 (FLAGS)"))
    assert b"$Work" in flags and b"\\Seen" in flags
    assert any(b"Archive" in line for line in client.ok('LSUB "" "*"'))
    node.deliver(USER, "after")  # UIDs go on where SQLite left off
    client.ok("NOOP")
    assert client.uids() == [*known, uidnext]
    # Asked from an older state, the copy still knows what was expunged.
    client.ok("UNSELECT")
    older = client.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} 1))")
    vanished = [line for line in older if b"VANISHED" in line]
    assert vanished and re.search(rb"\b3\b", vanished[0]), older
    client.close()
