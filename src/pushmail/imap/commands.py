"""The typed form of every IMAP command the server understands.

The parser (``parser.py``) turns bytes into these; the session runs them; the client
library encodes them (``encode_command``). They are the contract between those three,
so they carry no behaviour beyond checking themselves, and their ``name``: the command
as on the wire (``UID FETCH``), which is also the key of its row in the command table
(``command_table.py``).

Mailbox names here are always Unicode (already decoded from modified UTF-7); ``INBOX``
is already normalised to upper case in any spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pushmail.imap.commands_metadata import Metadata as Metadata
from pushmail.imap.types import DateTime, Secret, SequenceSet

# A BODY[section] names a MIME part: defined in mime/ (a leaf module) so that mime/
# never imports the IMAP core.
from pushmail.mime.section_spec import Section as Section

# --------------------------------------------------------------------------- FETCH


@dataclass(frozen=True, slots=True)
class FetchBody:
    """``BODY[section]<partial>``, ``BODY.PEEK[...]`` or ``BINARY[...]`` / ``BINARY.SIZE``."""

    section: Section = field(default_factory=Section)
    partial: tuple[int, int] | None = None  # (offset, length)
    peek: bool = False
    binary: bool = False  # BINARY[...] (RFC 3516)
    size_only: bool = False  # BINARY.SIZE[...]


# Simple attributes, named as on the wire. RFC822, RFC822.HEADER and RFC822.TEXT are
# kept as names: their response names differ from BODY[] (RFC 3501 §6.4.5).
SimpleAtt = Literal[
    "FLAGS",
    "INTERNALDATE",
    "RFC822.SIZE",
    "ENVELOPE",
    "BODY",
    "BODYSTRUCTURE",
    "UID",
    "MODSEQ",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
    "SAVEDATE",
    "PREVIEW",  # RFC 8970
    "PREVIEW (LAZY)",  # answered as PREVIEW, NIL when no stored preview is at hand
    "EMAILID",  # RFC 8474
    "THREADID",  # RFC 8474
]
FetchAtt = SimpleAtt | FetchBody

# --------------------------------------------------------------------------- SEARCH


@dataclass(frozen=True, slots=True)
class SearchAll:
    pass


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """ANSWERED/UNANSWERED, DELETED, DRAFT, FLAGGED, SEEN, RECENT, KEYWORD k ... ."""

    flag: str  # canonical flag, e.g. "\\Seen" or a keyword
    present: bool = True


@dataclass(frozen=True, slots=True)
class SearchNew:
    """NEW: \\Recent and not \\Seen."""


@dataclass(frozen=True, slots=True)
class SearchOld:
    """OLD: not \\Recent."""


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """HEADER field value; also FROM, TO, CC, BCC, SUBJECT (substring, case-insensitive)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchText:
    """BODY (body only) or TEXT (header and body)."""

    where: Literal["BODY", "TEXT"]
    value: str


@dataclass(frozen=True, slots=True)
class SearchDate:
    """BEFORE/ON/SINCE (internal date), SENTBEFORE/SENTON/SENTSINCE (Date: header)
    and SAVEDBEFORE/SAVEDON/SAVEDSINCE (save date, RFC 8514)."""

    op: Literal["BEFORE", "ON", "SINCE"]
    date: str  # ISO date "YYYY-MM-DD"; compared by calendar day
    sent: bool = False
    saved: bool = False

    def __post_init__(self) -> None:
        if self.sent and self.saved:
            raise ValueError("a date key is SENT or SAVED, not both")


@dataclass(frozen=True, slots=True)
class SearchSize:
    larger: bool
    n: int


@dataclass(frozen=True, slots=True)
class SearchSet:
    """A bare sequence set, or ``UID set``."""

    set: SequenceSet
    uid: bool = False


@dataclass(frozen=True, slots=True)
class SearchObjectId:
    """EMAILID objectid / THREADID objectid (RFC 8474)."""

    kind: Literal["EMAILID", "THREADID"]
    value: str


@dataclass(frozen=True, slots=True)
class SearchModseq:
    """MODSEQ [entry type] n (RFC 7162); the entry is accepted and ignored."""

    modseq: int


@dataclass(frozen=True, slots=True)
class SearchWithin:
    """OLDER n / YOUNGER n (RFC 5032): internal date more / less than n seconds
    before now."""

    older: bool
    seconds: int


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """A parenthesised list, or the implicit AND of the top-level keys."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    SearchAll
    | SearchFlag
    | SearchNew
    | SearchOld
    | SearchHeader
    | SearchText
    | SearchDate
    | SearchSize
    | SearchSet
    | SearchModseq
    | SearchObjectId
    | SearchWithin
    | SearchNot
    | SearchOr
    | SearchAnd
)

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Capability:
    name: ClassVar[str] = "CAPABILITY"
    tag: str


@dataclass(frozen=True, slots=True)
class Noop:
    name: ClassVar[str] = "NOOP"
    tag: str


@dataclass(frozen=True, slots=True)
class Logout:
    name: ClassVar[str] = "LOGOUT"
    tag: str


@dataclass(frozen=True, slots=True)
class StartTLS:
    name: ClassVar[str] = "STARTTLS"
    tag: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    name: ClassVar[str] = "AUTHENTICATE"
    tag: str
    mechanism: str  # upper-cased
    initial_response: bytes | None = None  # SASL-IR, already base64-decoded; b"" for "="


@dataclass(frozen=True, slots=True)
class Login:
    name: ClassVar[str] = "LOGIN"
    tag: str
    username: str
    password: Secret


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """``(QRESYNC (uidvalidity modseq [known-uids [(seq-match uid-match)]]))``."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    tag: str
    mailbox: str
    readonly: bool = False  # EXAMINE
    condstore: bool = False
    qresync: QresyncParams | None = None

    @property
    def name(self) -> str:
        return "EXAMINE" if self.readonly else "SELECT"


@dataclass(frozen=True, slots=True)
class Create:
    name: ClassVar[str] = "CREATE"
    tag: str
    mailbox: str
    special_use: tuple[str, ...] = ()  # CREATE-SPECIAL-USE (RFC 6154)


@dataclass(frozen=True, slots=True)
class Delete:
    name: ClassVar[str] = "DELETE"
    tag: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    name: ClassVar[str] = "RENAME"
    tag: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    tag: str
    mailbox: str
    subscribe: bool = True  # False for UNSUBSCRIBE

    @property
    def name(self) -> str:
        return "SUBSCRIBE" if self.subscribe else "UNSUBSCRIBE"


@dataclass(frozen=True, slots=True)
class ListCmd:
    """LIST and LSUB, with LIST-EXTENDED options (RFC 5258) and LIST-STATUS (RFC 5819)."""

    tag: str
    reference: str
    patterns: tuple[str, ...]
    lsub: bool = False
    selection: tuple[str, ...] = ()  # e.g. ("SUBSCRIBED", "SPECIAL-USE")
    returns: tuple[str, ...] = ()  # e.g. ("CHILDREN", "SPECIAL-USE", "SUBSCRIBED")
    status_items: tuple[str, ...] = ()  # RETURN (STATUS (...))

    @property
    def name(self) -> str:
        return "LSUB" if self.lsub else "LIST"


@dataclass(frozen=True, slots=True)
class Status:
    name: ClassVar[str] = "STATUS"
    tag: str
    mailbox: str
    items: tuple[str, ...]  # upper-cased: MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, UNSEEN ...


@dataclass(frozen=True, slots=True)
class CatUrl:
    """A CATENATE ``URL`` part (RFC 4469), as the client wrote it."""

    url: str


# A CATENATE part: TEXT (the literal's bytes) or URL.
CatPart = bytes | CatUrl


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND: its literal, or its CATENATE parts when ``parts``."""

    message: bytes = b""
    flags: tuple[str, ...] = ()
    internaldate: DateTime | None = None
    parts: tuple[CatPart, ...] = ()


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND; the first message's fields inline, the further ones of MULTIAPPEND
    (RFC 3502) in ``more``."""

    name: ClassVar[str] = "APPEND"
    tag: str
    mailbox: str
    message: bytes
    flags: tuple[str, ...] = ()
    internaldate: DateTime | None = None
    parts: tuple[CatPart, ...] = ()
    more: tuple[AppendMessage, ...] = ()

    @property
    def messages(self) -> tuple[AppendMessage, ...]:
        first = AppendMessage(self.message, self.flags, self.internaldate, self.parts)
        return (first, *self.more)


@dataclass(frozen=True, slots=True)
class GetQuota:
    """GETQUOTA root, GETQUOTAROOT mailbox, SETQUOTA root (...) (RFC 9208)."""

    tag: str
    kind: Literal["GETQUOTA", "GETQUOTAROOT", "SETQUOTA"]
    argument: str  # the quota root, or (GETQUOTAROOT) the mailbox
    limits: tuple[tuple[str, int], ...] = ()  # SETQUOTA's (resource, limit)

    @property
    def name(self) -> str:
        return self.kind


@dataclass(frozen=True, slots=True)
class Check:
    name: ClassVar[str] = "CHECK"
    tag: str


@dataclass(frozen=True, slots=True)
class Close:
    name: ClassVar[str] = "CLOSE"
    tag: str


@dataclass(frozen=True, slots=True)
class Unselect:
    name: ClassVar[str] = "UNSELECT"
    tag: str


@dataclass(frozen=True, slots=True)
class Expunge:
    tag: str
    uids: SequenceSet | None = None  # UID EXPUNGE (UIDPLUS)

    @property
    def name(self) -> str:
        return "EXPUNGE" if self.uids is None else "UID EXPUNGE"


@dataclass(frozen=True, slots=True)
class Search:
    tag: str
    key: SearchKey
    uid: bool = False
    charset: str | None = None
    returns: tuple[str, ...] | None = None  # ESEARCH: None means no RETURN given

    @property
    def name(self) -> str:
        return "UID SEARCH" if self.uid else "SEARCH"


@dataclass(frozen=True, slots=True)
class Fetch:
    tag: str
    set: SequenceSet
    items: tuple[FetchAtt, ...]
    uid: bool = False
    changedsince: int | None = None
    vanished: bool = False
    # The macro or list as given, for echoing nothing; the items are already expanded.

    @property
    def name(self) -> str:
        return "UID FETCH" if self.uid else "FETCH"


@dataclass(frozen=True, slots=True)
class StoreFlags:
    """STORE: named for what it does, apart from the storage protocol ``store.Store``."""

    tag: str
    set: SequenceSet
    mode: Literal["set", "add", "remove"]
    flags: tuple[str, ...]
    silent: bool = False
    uid: bool = False
    unchangedsince: int | None = None

    @property
    def name(self) -> str:
        return "UID STORE" if self.uid else "STORE"


@dataclass(frozen=True, slots=True)
class Copy:
    """COPY and MOVE (RFC 6851)."""

    tag: str
    set: SequenceSet
    mailbox: str
    uid: bool = False
    move: bool = False

    @property
    def name(self) -> str:
        name = "MOVE" if self.move else "COPY"
        return "UID " + name if self.uid else name


@dataclass(frozen=True, slots=True)
class Idle:
    name: ClassVar[str] = "IDLE"
    tag: str


@dataclass(frozen=True, slots=True)
class Namespace:
    name: ClassVar[str] = "NAMESPACE"
    tag: str


@dataclass(frozen=True, slots=True)
class Id:
    name: ClassVar[str] = "ID"
    tag: str
    params: tuple[tuple[str, str | None], ...] | None  # None for NIL


@dataclass(frozen=True, slots=True)
class Enable:
    name: ClassVar[str] = "ENABLE"
    tag: str
    capabilities: tuple[str, ...]  # upper-cased


@dataclass(frozen=True, slots=True)
class Compress:
    name: ClassVar[str] = "COMPRESS"
    tag: str
    mechanism: str  # upper-cased, e.g. "DEFLATE"


# --------------------------------------------------------------------------- NOTIFY

NotifyEvent = Literal[
    "MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"
]
FilterKind = Literal[
    "SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"
]


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """One ``event-group`` of NOTIFY SET (RFC 5465): which mailboxes, which events,
    and for MessageNew in the selected mailbox the FETCH items to send with it.
    ``events`` empty means NONE (no events for these mailboxes)."""

    kind: FilterKind
    mailboxes: tuple[str, ...] = ()  # for SUBTREE and MAILBOXES
    events: tuple[NotifyEvent, ...] = ()
    fetch: tuple[FetchAtt, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify:
    """NOTIFY SET [STATUS] groups, or NOTIFY NONE (``groups`` None)."""

    name: ClassVar[str] = "NOTIFY"
    tag: str
    groups: tuple[NotifyGroup, ...] | None
    status: bool = False
    unsupported: tuple[str, ...] = ()  # well-formed events we do not offer: NO [BADEVENT]


SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str  # one of SORT_KEYS
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort:
    """SORT / UID SORT (RFC 5256), with ESORT's RETURN options (RFC 5267)."""

    tag: str
    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchKey
    uid: bool = False
    returns: tuple[str, ...] | None = None  # None: no RETURN, a plain SORT response

    @property
    def name(self) -> str:
        return "UID SORT" if self.uid else "SORT"


@dataclass(frozen=True, slots=True)
class Thread:
    """THREAD / UID THREAD (RFC 5256)."""

    tag: str
    algorithm: Literal["ORDEREDSUBJECT", "REFERENCES"]
    charset: str
    key: SearchKey
    uid: bool = False

    @property
    def name(self) -> str:
        return "UID THREAD" if self.uid else "THREAD"


Command = (
    Capability | Noop | Logout | StartTLS | Authenticate | Login | Select | Create | Delete
    | Rename | Subscribe | ListCmd | Status | Append | GetQuota | Check | Close | Unselect
    | Expunge | Search | Sort | Thread | Fetch | StoreFlags | Copy | Idle | Namespace | Id
    | Enable | Compress | Notify | Metadata
)
