"""The command table: which function runs which command (DESIGN rule 3).

Declared in one place, so a reader sees every command the server implements and
nothing is found by name at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import cmd_auth, cmd_mailbox, cmd_message, cmd_notify, cmd_select
from pushmail.imap import commands as c
from pushmail.imap.errors import ImapError
from pushmail.imap.session import Action, Session
from pushmail.imap.states import uses_seqnums
from pushmail.store.interfaces import Store, StoreError

Handler = Callable[[Session, Any, Store], Action | None]

HANDLERS: dict[type, Handler] = {
    c.Capability: cmd_auth.capability,
    c.Noop: cmd_auth.noop,
    c.Logout: cmd_auth.logout,
    c.StartTLS: cmd_auth.starttls,
    c.Login: cmd_auth.login,
    c.Authenticate: cmd_auth.authenticate,
    c.Id: cmd_auth.id_,
    c.Enable: cmd_auth.enable,
    c.Namespace: cmd_auth.namespace,
    c.Compress: cmd_auth.compress,
    c.Idle: cmd_auth.idle,
    c.Notify: cmd_notify.notify,
    c.Select: cmd_select.select,
    c.Close: cmd_select.close,
    c.Unselect: cmd_select.unselect,
    c.Expunge: cmd_select.expunge,
    c.Check: cmd_select.check,
    c.Create: cmd_mailbox.create,
    c.Delete: cmd_mailbox.delete,
    c.Rename: cmd_mailbox.rename,
    c.Subscribe: cmd_mailbox.subscribe,
    c.ListCmd: cmd_mailbox.list_,
    c.Status: cmd_mailbox.status,
    c.Append: cmd_mailbox.append,
    c.Fetch: cmd_message.fetch,
    c.Store: cmd_message.store_,
    c.Search: cmd_message.search,
    c.Copy: cmd_message.copy,
}


def execute(session: Session, cmd: c.Command, store: Store) -> Action | None:
    """Run one (already state-checked) command; its errors become tagged replies.

    A store error is reported as ``NO`` with its text: it never ends the session.
    """
    handler = HANDLERS[type(cmd)]
    try:
        return handler(session, cmd, store)
    except ImapError as err:
        session.tagged(cmd.tag, err.status, err.text, err.code)
    except StoreError as err:
        session.tagged(cmd.tag, "NO", str(err) or "store error", err.code)
    return None


def run_command(
    session: Session, cmd: c.Command, store: Store
) -> tuple[Action | None, bytes, list[MailboxChanged]]:
    """One command as the driver runs it on the store thread: the handler, then the
    updates of the selected mailbox the client may be told now (no EXPUNGE while a
    command that uses sequence numbers runs, RFC 3501 §7.4.1), placed before the
    tagged reply. Returns the driver's action, the bytes to write and the events
    to publish. Kept here, not in the driver, so tests run exactly what it runs."""
    s = session
    action = execute(s, cmd, store)
    if s.view is not None and not isinstance(cmd, c.Select | c.Logout):
        allow = not uses_seqnums(cmd) or (isinstance(cmd, c.Copy) and cmd.move)
        lines = [b"* " + line + b"\r\n" for line in s.view.refresh(store, allow)]
        if lines:
            last = s.out[-1] if s.out else b""
            if action is None and last.startswith(cmd.tag.encode() + b" "):
                s.out[-1:-1] = lines
            else:
                s.out.extend(lines)
    events = list(s.events)
    s.events.clear()
    return action, s.take_output(), events
