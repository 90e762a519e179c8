r"""What an idle session with a 10,000-message mailbox selected costs in memory,
plain against UIDONLY (RFC 9586, issue 18). Prints one JSON line.

In process, no sockets: ``--sessions`` sessions per mode log in, (UIDONLY: ``ENABLE
UIDONLY``), ``SELECT INBOX`` through ``handlers.run_command`` exactly as the
driver runs them, and stay; the figure is the Python heap they keep (tracemalloc,
after a collection) divided by the number of sessions, and how much of it is the
view's UID array (the sequence-number map). Then the same for the record each
would shrink to when hibernated (``net/hibernated.Hibernated``, what an idle IDLE
session really is): it keeps a count, not the UIDs, in either mode. And what that
costs a UIDONLY session per command: the median time of ``UID FETCH n FLAGS``
(``--commands`` times), which reads the map again first, and of ``NOOP``, which
does not when nothing changed. A first SELECT,
not measured, takes \Recent for the mailbox, so no measured session holds it.

    .venv/bin/python bench/uidonly_memory.py [--messages 10000] [--sessions 20]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from array import array
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--commands", type=int, default=200)
    args = ap.parse_args()

    from pushmail.imap.command_table import parse_command
    from pushmail.imap.handlers import run_command
    from pushmail.imap.session import ServerInfo, Session
    from pushmail.imap.structure import build_cache
    from pushmail.net.hibernated import UIDONLY, Hibernated
    from pushmail.net.homes import RecordFields
    from pushmail.store.factory import open_store
    from pushmail.store.interfaces import NewMessage

    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"sqlite://{Path(d) / 'store.sqlite3'}")
        user = store.create_user("alice@example.org", "{PLAIN}pw")
        inbox = store.get_mailbox(user.id, "INBOX")
        assert inbox is not None
        t0 = time.monotonic()
        batch = 1000
        for start in range(0, args.messages, batch):
            msgs = []
            for i in range(start, min(start + batch, args.messages)):
                raw = b"Subject: m%d\r\nFrom: a@example.org\r\n\r\nbody %d\r\n" % (i, i)
                msgs.append((inbox.id, NewMessage(raw, build_cache(raw))))
            store.deliver(msgs)
        fill_s = time.monotonic() - t0

        def run(s: Session, line: bytes) -> bytes:
            _action, out, _events = run_command(s, parse_command(line + b"\r\n"), store)
            assert out.splitlines()[-1].split()[1] == b"OK", out[-200:]
            return out

        def sessions(uidonly: bool) -> dict[str, object]:
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            kept = []
            for _ in range(args.sessions):
                s = Session(ServerInfo(), secure=True, loopback=True)
                s.login_succeeded(user)
                if uidonly:
                    run(s, b"e ENABLE UIDONLY")
                run(s, b"s SELECT INBOX")
                kept.append(s)
            gc.collect()
            per = (tracemalloc.get_traced_memory()[0] - before) / args.sessions
            tracemalloc.stop()
            # The price of the map not kept: a UIDONLY session reads it again for
            # each command (one more query of the mailbox's UIDs).
            times, noops = [], []
            for _ in range(args.commands):
                t = time.perf_counter()
                run(kept[0], b"n UID FETCH %d FLAGS" % args.messages)
                times.append(time.perf_counter() - t)
                t = time.perf_counter()
                run(kept[0], b"n NOOP")  # needs no map when nothing changed
                noops.append(time.perf_counter() - t)
            view = kept[0].view
            assert view is not None and view.exists == args.messages
            assert view.uidonly == uidonly
            uid_array = view.uids.itemsize * len(view.uids) + sys.getsizeof(array("I"))
            # The record the same session shrinks to in IDLE (built as another
            # worker would restore it: no socket needed to measure it).
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            recs = [
                Hibernated.restore(
                    -1,
                    None,  # type: ignore[arg-type]
                    RecordFields(
                        user.id, view.mailbox_id, view.modseq, view.uidnext, view.exists,
                        UIDONLY if uidonly else 0, 0.0, 0.0, "idle", array("I", view.recent),
                        None, len(view.keywords),
                    ),
                )
                for _ in range(args.sessions)
            ]
            gc.collect()
            rec = (tracemalloc.get_traced_memory()[0] - before) / args.sessions
            tracemalloc.stop()
            del recs, kept
            return {
                "awake_bytes_per_session": round(per),
                "uid_array_bytes": uid_array,
                "hibernated_bytes_per_session": round(rec),
                "uid_fetch_one_median_us": round(statistics.median(times) * 1e6),
                "noop_median_us": round(statistics.median(noops) * 1e6),
            }

        # One SELECT first claims \Recent for the whole mailbox (RFC 3501 §2.3.2):
        # otherwise the first measured session alone would keep 10,000 \Recent UIDs.
        first = Session(ServerInfo(), secure=True, loopback=True)
        first.login_succeeded(user)
        run(first, b"s SELECT INBOX")
        plain = sessions(False)
        uidonly = sessions(True)
        store.close()
    print(
        json.dumps(
            {
                "bench": "uidonly_memory",
                "messages": args.messages,
                "sessions": args.sessions,
                "fill_s": round(fill_s, 1),
                "plain": plain,
                "uidonly": uidonly,
            }
        )
    )


if __name__ == "__main__":
    main()
