"""An IMAP session on a PostgreSQL store that goes away for a while: the session is
not dropped, commands that need the store fail with ``NO``, and once the database is
back the session learns of the mail delivered meanwhile (through another node)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LineClient, LiveServer, message

from pg_proxy import CuttableProxy
from pg_testdb import scratch_database
from pushmail.events.interfaces import MailboxChanged
from pushmail.imap.structure import build_cache
from pushmail.store.interfaces import NewMessage


def test_a_session_survives_an_outage_and_sees_what_came_meanwhile(tmp_path: Path) -> None:
    from pushmail.store.pg_schema import new_pool
    from pushmail.store.postgres import PostgresStore

    with scratch_database() as url:
        proxy = CuttableProxy(url)
        pool = new_pool(proxy.url + "?connect_timeout=2", max_size=4, timeout=1.0)
        other = PostgresStore(url)  # another node, whose link to the database stays up
        srv = LiveServer(tmp_path, lambda: PostgresStore(proxy.url, pool=pool))
        try:
            with LineClient(srv.port) as client:
                client.login()
                assert client.command("S", "SELECT INBOX")[-1].startswith(b"S OK")
                box = other.get_mailbox(srv.user.id, "INBOX")
                assert box is not None
                client.send(b"I IDLE\r\n")
                assert client.line().startswith(b"+ ")
                proxy.cut()
                raw = message("while away")
                app = other.append(box.id, NewMessage(raw, build_cache(raw)))
                srv.bus.publish(MailboxChanged(srv.user.id, box.id, app.modseq, "new"))
                time.sleep(1.5)  # the session's look at the store fails meanwhile
                client.send(b"DONE\r\n")
                done = client.until("I")
                assert done[-1].startswith(b"I OK"), done
                noop = client.command("N1", "NOOP")
                assert noop[-1].startswith((b"N1 NO", b"N1 OK")), noop
                assert b"* 1 EXISTS" not in b"".join(noop)
                status = client.command("ST", "STATUS INBOX (MESSAGES)")  # needs the store
                assert status[-1].startswith(b"ST NO"), status
                proxy.restore()
                start = time.monotonic()
                seen: list[bytes] = []
                while b"* 1 EXISTS" not in b"".join(seen):
                    assert time.monotonic() - start < 30, seen
                    seen = client.command("N2", "NOOP")
                    time.sleep(0.2)
                assert seen[-1].startswith(b"N2 OK"), seen
        finally:
            srv.close()
            other.close()
            pool.close()
            proxy.close()
