"""What the IMAP connections of one listener share (``ImapContext``), and the login
glue of the driver: guessing limits, the credential cache, the hashing threads, a
failure's delay.

Its own module so that the driver (``net/imap_conn.py``) and hibernation
(``net/hibernate.py``, ``net/hibernated.py``) share the context without importing
each other: hibernation sees a connection through ``IdleConn`` and makes one with a
factory it is given, and the driver sees the hibernator through ``Sleeper``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pushmail.auth.cache import CredentialCache
from pushmail.auth.guard import LoginGuard
from pushmail.auth.passwords import cheap_to_verify, verify_password
from pushmail.config import Limits
from pushmail.events.interfaces import Publisher
from pushmail.imap.session import Action, ServerInfo, Session
from pushmail.net.idle_hub import IdleHub
from pushmail.threads.store_runner import StoreRunner
from pushmail.transport.conncap import ConnectionGate

if TYPE_CHECKING:
    from pushmail.imap.selected import SelectedView
    from pushmail.store.interfaces import User

# A password hash to check against when the user does not exist, so that a missing
# user takes as long to refuse as a wrong password.
_DUMMY_HASH = "{PLAIN}x"


class IdleConn(Protocol):
    """A connection as hibernation sees it (``net/imap_conn.ImapConnection``)."""

    session: Session
    last_activity: float
    last_write: float

    @property
    def transport(self) -> asyncio.Transport | None: ...

    @property
    def idle_tag(self) -> str: ...

    def quiet_input(self) -> bool: ...

    def detach(self) -> None: ...

    def wake(self) -> None: ...

    def resume_idle(
        self, tag: str, user: User, view: SelectedView, loopback: bool, last_activity: float
    ) -> None: ...


class Sleeper(Protocol):
    """The worker's hibernator (``net/hibernate.Hibernator``) as others use it."""

    def __len__(self) -> int: ...

    def hibernate(self, conn: IdleConn) -> bool: ...

    def sweep(self, now: float, keepalive: float, autologout: float, wall: float) -> None: ...

    async def recheck(self, share: int, of: int) -> None: ...

    def counts(self) -> dict[str, int]: ...

    def close(self, farewell: bytes) -> None: ...


@dataclass(slots=True)
class ImapContext:
    """Everything the connections of one listener share."""

    info: ServerInfo
    runner: StoreRunner
    hub: IdleHub
    publisher: Publisher
    limits: Limits
    tls: ssl.SSLContext | None
    auth_pool: Executor
    connections: set[Any]  # the live ImapConnections (typed there: no import back)
    dummy_hash: str = _DUMMY_HASH
    hibernator: Sleeper | None = None  # set by the server once the loop runs
    gate: ConnectionGate | None = None  # connection caps (transport/conncap.py); None: none
    credentials: CredentialCache = field(default_factory=CredentialCache)
    guard: LoginGuard = field(default_factory=LoginGuard)  # password-guessing limits


Finish = Callable[[Action, "bool | None"], None]


def password_known(ctx: ImapContext, action: Action) -> bool | None:
    """Whether the password is right, when that can be told without a thread: a
    ``{PLAIN}`` hash (one constant-time compare; no cache entry), or a hit in the
    credential cache. None: the auth pool must check it (also for a missing
    user, against the dummy hash, so that refusing one takes as long)."""
    user = action.user
    if user is None:
        return None
    stored = user.password_hash
    if cheap_to_verify(stored):
        return verify_password(stored, action.password)
    return True if ctx.credentials.check(user.address, stored, action.password) else None


def login(
    ctx: ImapContext, client: str, action: Action, session: Session, finish: Finish
) -> Coroutine[Any, Any, None] | None:
    """A LOGIN/AUTHENTICATE: the guessing limits first (``auth/guard.py``), then
    what can be told in place, ending in ``finish(action, ok)``; a coroutine when
    the rest needs the hashing threads or a failure's delay."""
    guard = ctx.guard
    if guard.admit("imap", client, action.account) is not None:
        finish(action, None)
        return None
    known = password_known(ctx, action)
    if not known:
        return _verify(ctx, client, action, known, session, finish)
    guard.settle("imap", client, action.account, True)
    finish(action, True)
    return None


async def _verify(
    ctx: ImapContext,
    client: str,
    action: Action,
    known: bool | None,
    session: Session,
    finish: Finish,
) -> None:
    """Finish a login: ``known`` is ``password_known``'s answer, and None means
    the auth pool checks the password; a failure waits a growing delay first."""
    ok, guard = known, ctx.guard
    if ok is None:
        user, cache = action.user, ctx.credentials
        stored = user.password_hash if user else ctx.dummy_hash
        checked = await guard.check(
            "imap", client, action.account, ctx.auth_pool, verify_password, stored, action.password
        )
        if checked is None:  # the hashing queue is full
            guard.settle("imap", client, action.account, None)
            finish(action, None)
            return
        ok = checked and user is not None
        if ok and user is not None:
            cache.remember(user.address, stored, action.password)
    guard.settle("imap", client, action.account, ok)
    if not ok:
        fails = session.auth_failures + 1
        await asyncio.sleep(ctx.limits.auth_failure_delay * (2 ** (fails - 1)))
    finish(action, ok)
