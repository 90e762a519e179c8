"""Issue 15 item 10: CREATE (and RENAME) cannot make mailboxes past the configured
name length, hierarchy depth and count per user: ``NO [LIMIT]``."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from pushmail.config import Limits, load_config
from pushmail.store.interfaces import DEFAULT_MAILBOXES, Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import LineClient, live_server


def test_limits_are_configurable(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("[limits]\nmax_mailboxes = 7\nmax_mailbox_depth = 3\nmax_mailbox_name = 40\n")
    limits = load_config(conf).limits
    assert (limits.max_mailboxes, limits.max_mailbox_depth, limits.max_mailbox_name) == (7, 3, 40)
    assert Limits().max_mailboxes == 1000


def test_create_over_each_limit_is_refused(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        base = len(DEFAULT_MAILBOXES)  # a new user's mailboxes, INBOX among them
        srv.ctx.info = dataclasses.replace(
            srv.ctx.info, max_mailboxes=base + 4, max_mailbox_depth=3, max_mailbox_name=20
        )
        uid = srv.user.id
        with LineClient(srv.port) as c1:
            c1.login()
            long = c1.command("c1", 'CREATE "' + "x" * 21 + '"')[-1]
            assert long.startswith(b"c1 NO [LIMIT]"), long
            deep = c1.command("c2", "CREATE a/b/c/d")[-1]
            assert deep.startswith(b"c2 NO [LIMIT]"), deep
            assert c1.command("c3", "CREATE a/b/c")[-1].startswith(b"c3 OK")  # base + 3
            assert c1.command("c4", "CREATE one")[-1].startswith(b"c4 OK")  # base + 4
            full = c1.command("c5", "CREATE two")[-1]
            assert full.startswith(b"c5 NO [LIMIT]"), full
            # RENAME carries the children down a level: too deep for "a/b/c".
            moved = c1.command("r1", "RENAME a one/a")[-1]
            assert moved.startswith(b"r1 NO [LIMIT]"), moved
            assert c1.command("n1", "NOOP")[-1].startswith(b"n1 OK")

        def names(st: Store) -> list[str]:
            return sorted(b.name for b in st.list_mailboxes(uid))

        defaults = [name for name, _use in DEFAULT_MAILBOXES]
        assert srv.store_call(names) == sorted([*defaults, "a", "a/b", "a/b/c", "one"])


def test_one_create_of_a_deep_path_counts_every_level(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        srv.ctx.info = dataclasses.replace(srv.ctx.info, max_mailboxes=len(DEFAULT_MAILBOXES) + 2)
        with LineClient(srv.port) as c1:
            c1.login()
            reply = c1.command("c1", "CREATE p/q/r")[-1]  # 3 levels, 2 allowed
            assert reply.startswith(b"c1 NO [LIMIT]"), reply
            assert c1.command("c2", "CREATE p/q")[-1].startswith(b"c2 OK")
