"""What every store backend provides (SQLite now, PostgreSQL later).

The store is the truth; events are hints. Everything a session tells a client is read
from here, keyed by UIDVALIDITY, UID and MODSEQ, so a session can always ask "what
changed since the state I last reported" and get an exact answer.

Calls are synchronous: the IMAP driver runs them on a worker thread, never on the
event loop (design.md rule 8). One store object is used by one thread at a time.

Mailbox names are Unicode with "/" as the hierarchy delimiter; "INBOX" is always
spelled in upper case by the callers.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

HIERARCHY_DELIMITER = "/"

# The folders every new user gets, with their SPECIAL-USE attribute (RFC 6154).
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
)


class StoreError(Exception):
    """Base of the store's errors; the session turns them into ``NO`` replies
    with the response code that ``imap/store_errors.py`` gives their class."""


class NotFound(StoreError):
    """No such user, mailbox or message."""


class AlreadyExists(StoreError):
    """A user or mailbox of that name exists."""


class Conflict(StoreError):
    """The operation is not allowed in the current state (e.g. DELETE INBOX)."""


class NoSpace(StoreError):
    """The disk or the database is full: nothing was changed."""


class OverQuota(NoSpace):
    """The user's quota (``pushmail user quota``) would be exceeded: nothing was
    changed. IMAP answers ``NO [OVERQUOTA]``, LMTP/SMTP ``452 4.2.2``."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (its database is down or every connection is
    busy): nothing was changed and the caller may try again later. IMAP answers
    ``NO [UNAVAILABLE]``, SMTP/LMTP ``451 4.3.0``, and the session stays up."""


# Keywords one mailbox may define. Every session that selects the mailbox is sent
# the whole list in FLAGS and PERMANENTFLAGS, and again whenever it grows: the cap
# bounds those lines and what each session keeps. Beyond it, a command that would
# define one more fails with ``NO [LIMIT]`` and PERMANENTFLAGS no longer offers \*.
MAX_KEYWORDS_PER_MAILBOX = 256


class KeywordLimit(StoreError):
    """A command would define more than MAX_KEYWORDS_PER_MAILBOX keywords."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    address: str  # lower-cased
    password_hash: str = ""

    def __repr__(self) -> str:  # the hash never reaches a log
        return f"User(id={self.id}, address={self.address!r})"


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    user_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None = None
    subscribed: bool = False


@dataclass(frozen=True, slots=True)
class MailboxCounts:
    """What STATUS reports, computed in one query."""

    messages: int
    recent: int
    unseen: int
    size: int  # sum of RFC822.SIZE, for STATUS=SIZE
    deleted: int
    deleted_storage: int = 0  # octets of the \Deleted ones (RFC 9208 DELETED-STORAGE)


@dataclass(frozen=True, slots=True)
class SelectInfo:
    """What SELECT needs of a mailbox, read in one snapshot: the sequence-number map
    without a ``MessageMeta`` per message, so selecting a large mailbox stays cheap.

    ``uids`` is ascending and handed over to the caller (a ``SelectedView`` keeps it
    and appends to it). ``highestmodseq`` and ``uidnext`` are at least those of every
    listed message, so a view built from them reports nothing listed twice.
    """

    uids: array[int]
    first_unseen_uid: int | None  # the lowest UID without \Seen, for [UNSEEN n]
    highestmodseq: int
    uidnext: int
    keywords: tuple[str, ...] = ()  # defined in the mailbox, in order of definition
    # The first UID no session has claimed as \Recent: what EXAMINE reports as
    # recent without claiming it (RFC 3501 §6.3.2). 0 when unknown: none.
    recent_floor: int = 0


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """One message as a mailbox lists it: no body, cheap to hold many."""

    uid: int
    modseq: int
    flags: frozenset[str]
    internaldate: datetime
    size: int


@dataclass(frozen=True, slots=True)
class MessageCache:
    """Pre-computed answers kept with the body at delivery (as Dovecot's cache).

    ``envelope`` and ``bodystructure`` are already IMAP-encoded; ``body`` is the
    non-extensible BODY form; ``preview`` the RFC 8970 PREVIEW text (None: not
    computed yet, as for a text stored before previews were, until the start-up
    refresh). Computed once by ``pushmail.mime`` so that FETCH of these items
    never re-parses the message.
    """

    envelope: bytes
    bodystructure: bytes
    body: bytes
    preview: str | None = None


@dataclass(frozen=True, slots=True)
class SortKeys:
    """What SORT and THREAD (RFC 5256, 5957) need of one message text, computed once
    from its header (``store/sortkeys.py``) and kept beside the body. Strings are
    already in comparison form (i;unicode-casemap: titlecased and decomposed), so
    sorting compares them as they are."""

    subject: str  # the base subject (RFC 5256 §2.1)
    reply: bool  # extracting it removed a Re:/Fwd: part (a reply or forward, §4)
    from_: str  # addr-mailbox of the first From address ("" when none)
    to: str
    cc: str
    display_from: str  # RFC 5957: the display name, else the addr-spec
    display_to: str
    sent: int | None  # the Date: header as unix seconds (None: missing or unparseable)
    message_id: str | None  # without <>; None when missing or invalid
    references: tuple[str, ...]  # References (else In-Reply-To's first), oldest first


@dataclass(frozen=True, slots=True)
class SortEntry:
    """One message as SORT and THREAD see it: its text's keys, its internal date
    (unix seconds) and RFC822.SIZE. None of it changes while the message exists."""

    keys: SortKeys
    arrival: int
    size: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to add: raw bytes exactly as delivered, plus its cache."""

    raw: bytes
    cache: MessageCache
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None  # now, when None


@dataclass(frozen=True, slots=True)
class Quota:
    """Limits of one user; None: that resource is not limited."""

    storage: int | None = None  # octets
    messages: int | None = None

    @property
    def empty(self) -> bool:
        return self.storage is None and self.messages is None


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    storage: int  # octets
    messages: int


@dataclass(frozen=True, slots=True)
class Appended:
    mailbox_id: int
    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What happened in a mailbox after ``since_modseq``.

    ``changed`` holds every message whose MODSEQ is greater (new ones and flag
    changes), ascending by UID; ``expunged`` the UIDs expunged after it, ascending.
    ``expunged_complete`` is False when the store no longer remembers every
    expunge that far back (then a client must fall back to a full UID comparison).
    ``keywords`` is the mailbox's whole keyword list (in order of definition, only
    ever growing), read in the same snapshot: every keyword of ``changed`` is in it.
    """

    highestmodseq: int
    uidnext: int
    changed: tuple[MessageMeta, ...]
    expunged: tuple[int, ...]
    expunged_complete: bool = True
    keywords: tuple[str, ...] = ()


FlagMode = Literal["set", "add", "remove"]


@dataclass(frozen=True, slots=True)
class FlagResult:
    """Outcome of a STORE: messages changed, and UIDs refused by UNCHANGEDSINCE."""

    changed: tuple[MessageMeta, ...]
    modified: tuple[int, ...]  # the [MODIFIED ...] set of RFC 7162 §3.1.3


class Store(Protocol):
    """The operations on users, mailboxes and messages. See module docstring."""

    # -- users ------------------------------------------------------------------
    def create_user(self, address: str, password_hash: str) -> User:
        """Create a user with the DEFAULT_MAILBOXES; AlreadyExists if taken."""
        ...

    def create_users(self, users: Sequence[tuple[str, str]], update: bool = False) -> int:
        """Create many (address, password hash) users with their DEFAULT_MAILBOXES in
        one transaction; an existing address is skipped, or its hash replaced when
        ``update``. Returns the number created."""
        ...

    def get_user(self, address: str) -> User | None: ...

    def get_user_by_id(self, user_id: int) -> User | None: ...

    def list_users(self) -> list[User]: ...

    def set_password(self, address: str, password_hash: str) -> None: ...

    def delete_user(self, address: str) -> None:
        """Remove the user and all their mail; NotFound if absent."""
        ...

    # -- mailboxes --------------------------------------------------------------
    def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        """All mailboxes of the user, sorted by name."""
        ...

    def get_mailbox(self, user_id: int, name: str) -> Mailbox | None: ...

    def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None: ...

    def highest_modseqs(self, mailbox_ids: Collection[int]) -> dict[int, int]:
        """HIGHESTMODSEQ of each mailbox that exists, in one query: what idle sessions
        are compared with to find a change whose hint they missed."""
        ...

    def create_mailbox(self, user_id: int, name: str, special_use: str | None = None) -> Mailbox:
        """Create ``name`` (and any missing parents); AlreadyExists if it exists.

        UIDVALIDITY of a new mailbox is never one used before by a mailbox of the
        same name, so a client never mistakes a re-created mailbox for the old one.
        """
        ...

    def delete_mailbox(self, user_id: int, name: str) -> None:
        """Delete the mailbox and its messages; Conflict for INBOX; NotFound if absent."""
        ...

    def rename_mailbox(self, user_id: int, old: str, new: str) -> None:
        """Rename ``old`` and its children. Renaming INBOX moves its messages into a new
        mailbox ``new`` and leaves INBOX empty (RFC 3501 §6.3.5)."""
        ...

    def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        """Subscriptions may name mailboxes that do not exist (RFC 3501 §6.3.6)."""
        ...

    def subscriptions(self, user_id: int) -> list[str]: ...

    def counts(self, mailbox_id: int) -> MailboxCounts: ...

    def counts_many(self, mailbox_ids: Collection[int]) -> dict[int, MailboxCounts]:
        """``counts`` of each mailbox that exists, in one query (LIST-STATUS)."""
        ...

    # -- messages ---------------------------------------------------------------
    def append(self, mailbox_id: int, message: NewMessage) -> Appended:
        """Add one message durably: when this returns, it is on disk (fsync)."""
        ...

    def deliver(self, targets: Sequence[tuple[int, NewMessage]]) -> list[Appended]:
        """Add messages to several mailboxes in one durable transaction (one fsync).

        Identical raw bytes are stored once however many mailboxes get them.
        """
        ...

    def deliver_within_quota(
        self, targets: Sequence[tuple[int, NewMessage]]
    ) -> list[Appended | None]:
        """As ``deliver``, but a target whose owner's quota it would exceed is left
        out (None in its place) instead of failing them all: LMTP answers each
        recipient. ``deliver``, ``append`` and ``copy`` raise ``OverQuota``."""
        ...

    def get_quota(self, user_id: int) -> tuple[Quota, QuotaUsage]:
        """The user's limits (``Quota()`` when none) and current usage."""
        ...

    def set_quota(self, user_id: int, quota: Quota) -> None:
        """Set the user's limits; an empty ``Quota()`` removes them."""
        ...

    def get_metadata(self, user_id: int, mailbox_id: int | None) -> dict[str, bytes]:
        """Every METADATA entry (RFC 5464; lower-cased name → value) the user keeps
        on the mailbox, or on the server when ``mailbox_id`` is None."""
        ...

    def set_metadata(
        self,
        user_id: int,
        mailbox_id: int | None,
        changes: Sequence[tuple[str, bytes | None]],
        max_entries: int,
    ) -> bool:
        """Set (None: delete) entries, all or none: False, changing nothing, when the
        user would then hold more than ``max_entries`` entries in all."""
        ...

    def list_messages(self, mailbox_id: int) -> list[MessageMeta]:
        """Every message of the mailbox, ascending by UID."""
        ...

    def get_messages(self, mailbox_id: int, uids: Iterable[int]) -> list[MessageMeta]:
        """The named messages that still exist, ascending by UID."""
        ...

    def uids(self, mailbox_id: int) -> list[int]:
        """Every UID of the mailbox, ascending: the sequence-number map."""
        ...

    def select_info(self, mailbox_id: int) -> SelectInfo:
        """The UIDs, first unseen UID, HIGHESTMODSEQ and UIDNEXT in one snapshot,
        without building per-message objects; NotFound if the mailbox is gone."""
        ...

    def changes_since(self, mailbox_id: int, since_modseq: int) -> Changes: ...

    def keywords(self, mailbox_id: int) -> tuple[str, ...]:
        """The keywords defined in the mailbox, in order of definition. Every keyword
        a message of the mailbox has is in it; it only grows. STORE, APPEND, COPY and
        MOVE that bring a new one extend it (KeywordLimit beyond the cap)."""
        ...

    def get_raw(self, mailbox_id: int, uid: int) -> bytes:
        """The message exactly as stored; NotFound if expunged."""
        ...

    def get_cache(self, mailbox_id: int, uid: int) -> MessageCache: ...

    def email_ids(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, str]:
        """The EMAILID (RFC 8474, ``common.email_object_id``) of each named message
        that exists, in one query."""
        ...

    def save_dates(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, datetime | None]:
        """When each named message that exists was saved into the mailbox (delivery,
        APPEND, COPY, MOVE; RFC 8514), UTC, in one query; None: saved before save
        dates were kept."""
        ...

    def previews(self, mailbox_id: int, uids: Iterable[int]) -> dict[int, str | None]:
        """The stored PREVIEW of each named message that exists, in one query (None:
        not computed yet): what ``FETCH 1:* (PREVIEW)`` reads, without the rest of
        each message's cache."""
        ...

    def sort_keys(
        self, mailbox_id: int, uids: Collection[int] | None = None
    ) -> dict[int, SortEntry]:
        """The ``SortEntry`` of each named message that exists (every message when
        ``uids`` is None), by UID, in one query; texts stored before keys were kept
        get theirs computed and stored now."""
        ...

    def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: frozenset[str],
        unchangedsince: int | None = None,
    ) -> FlagResult:
        """Change flags; each changed message gets a new MODSEQ. ``\\Recent`` is
        never stored. Messages whose flags would not change keep their MODSEQ."""
        ...

    def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove the ``\\Deleted`` messages (only those in ``uids`` if given);
        return their UIDs ascending. Expunged UIDs are remembered with their MODSEQ."""
        ...

    def copy(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int, move: bool = False
    ) -> list[tuple[int, int]]:
        """Copy (or move) messages, keeping flags and internal date; returns
        (source UID, new UID) pairs. With ``move`` the sources are expunged in the
        same transaction."""
        ...

    def claim_recent(self, mailbox_id: int, wait: bool = True) -> int:
        """Atomically take the \\Recent messages for one session: returns the first
        UID that is recent for the caller and moves the mailbox's recent floor to
        UIDNEXT, so no other session sees them as recent (RFC 3501 §2.3.2).
        ``wait=False``: give up at once rather than wait for another writer."""
        ...

    def prune_expunged(self, older_than: float) -> int:
        """Forget expunge records older than ``older_than`` seconds; a later
        ``changes_since`` from before them says ``expunged_complete=False``."""
        ...

    def close(self) -> None: ...
