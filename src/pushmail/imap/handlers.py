"""Running one command as the driver does: its row's handler, then the updates the
client may be told now. Which handler runs which command is the command table's
(``command_table.py``, design.md rule 3).
"""

from __future__ import annotations

from pushmail.events.interfaces import MailboxChanged
from pushmail.imap import commands as c
from pushmail.imap.command_table import COMMANDS
from pushmail.imap.session import Action, Session
from pushmail.store.interfaces import Store, StoreUnavailable


def run_command(
    session: Session, cmd: c.Command, store: Store
) -> tuple[Action | None, bytes, list[MailboxChanged]]:
    """One command as the driver runs it on the store thread: the handler, then the
    updates of the selected mailbox the client may be told now (no EXPUNGE while a
    command that uses sequence numbers runs, RFC 3501 §7.4.1), placed before the
    tagged reply. Returns the driver's action, the bytes to write and the events
    to publish. Kept here, not in the driver, so tests run exactly what it runs."""
    s = session
    action = COMMANDS.execute(s, cmd, store)
    if s.view is not None and not isinstance(cmd, c.Select | c.Logout):
        allow = COMMANDS.row_of(cmd).expunges_allowed()
        try:
            changes = s.view.refresh(store, allow)
        except StoreUnavailable:  # the view is unchanged: a later refresh reports it all
            changes = []
        lines = [b"* " + line + b"\r\n" for line in changes]
        if lines:
            last = s.out[-1] if s.out else b""
            if action is None and last.startswith(cmd.tag.encode() + b" "):
                s.out[-1:-1] = lines
            else:
                s.out.extend(lines)
    if s.view is not None:
        s.view.shed()  # UIDONLY: no sequence map kept between commands (RFC 9586)
    events = list(s.events)
    s.events.clear()
    return action, s.take_output(), events
