"""Where a LOGIN's password is checked: a ``{PLAIN}`` hash in place (no trip to the
auth threads, nothing kept in the credential cache), a key-stretched hash on the auth
pool and remembered; right and wrong passwords answered correctly either way."""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pushmail.auth.passwords import cheap_to_verify, hash_password
from pushmail.store.interfaces import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traces"))
from imap_harness import PASSWORD, LineClient, live_server


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.jobs = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def test_cheap_schemes() -> None:
    assert cheap_to_verify("{PLAIN}x") and cheap_to_verify("{cleartext}x")
    assert not cheap_to_verify(hash_password("x"))
    assert not cheap_to_verify("{SHA512-CRYPT}$6$salt$hash") and not cheap_to_verify("x")


def test_plain_checked_in_place_stretched_on_pool(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv:
        pool = CountingPool()
        srv.ctx.auth_pool.shutdown()
        srv.ctx.auth_pool = pool

        def add_bob(st: Store) -> None:
            st.create_user("bob@example.org", hash_password("bobs secret"))

        srv.store_call(add_bob)
        with LineClient(srv.port) as c:
            assert c.command("a", "LOGIN alice@example.org wrong")[-1].startswith(b"a NO")
            assert c.command("b", f"LOGIN alice@example.org {PASSWORD}")[-1].startswith(b"b OK")
        assert pool.jobs == 0 and len(srv.ctx.credentials) == 0
        with LineClient(srv.port) as c:
            assert c.command("c", 'LOGIN bob@example.org "bobs secret"')[-1].startswith(b"c OK")
        assert pool.jobs == 1 and len(srv.ctx.credentials) == 1
        with LineClient(srv.port) as c:  # remembered: no second trip
            assert c.command("d", 'LOGIN bob@example.org "bobs secret"')[-1].startswith(b"d OK")
            assert c.command("e", "LOGIN bob@example.org wrong")[-1].startswith(b"e BAD")
        assert pool.jobs == 1
        with LineClient(srv.port) as c:
            assert c.command("f", "LOGIN bob@example.org wrong")[-1].startswith(b"f NO")
        assert pool.jobs == 2


def test_bare_name_login_under_default_domain(tmp_path: Path) -> None:
    """Issue 14 item 14: ``alice`` logs in as alice@example.org when default_domain is
    set (LOGIN and AUTHENTICATE PLAIN), and not without it."""
    import base64
    import dataclasses

    with live_server(tmp_path) as srv:
        with LineClient(srv.port) as c:
            assert c.command("a", f"LOGIN alice {PASSWORD}")[-1].startswith(b"a NO")
        srv.ctx.info = dataclasses.replace(srv.ctx.info, default_domain="example.org")
        with LineClient(srv.port) as c:
            assert c.command("b", f"LOGIN Alice {PASSWORD}")[-1].startswith(b"b OK")
        blob = base64.b64encode(f"alice@example.org\0alice\0{PASSWORD}".encode()).decode()
        with LineClient(srv.port) as c:
            assert c.command("c", f"AUTHENTICATE PLAIN {blob}")[-1].startswith(b"c OK")
