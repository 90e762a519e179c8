"""Random commands → encode_command → parse_command → the same command (design.md rule 11)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from pushmail.imap import commands as c
from pushmail.imap.client_encode import encode_command, encode_command_parts
from pushmail.imap.command_table import parse_command
from pushmail.imap.fragmentizer import CommandReady, Fragmentizer, NeedContinuation
from pushmail.imap.parse_fetch import FETCH_MACROS
from pushmail.imap.parse_mailbox import LIST_RETURN_OPTS, STATUS_ATTS
from pushmail.imap.parse_search import SEARCH_RETURN_OPTS
from pushmail.imap.types import DateTime, Secret, SeqRange, SequenceSet

ATOM_CHARS = "".join(chr(b) for b in range(0x21, 0x7F) if chr(b) not in '(){%*"\\]')
TAG_CHARS = ATOM_CHARS.replace("+", "") + "]"
SYSTEM = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")

tags = st.text(TAG_CHARS, min_size=1, max_size=8)
atoms = st.text(ATOM_CHARS, min_size=1, max_size=10)
upper_atoms = atoms.map(str.upper)
# Any text a client could mean, except NUL (no literal may carry it) and surrogates.
texts = st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=20)
mailboxes = texts.filter(lambda s: s.upper() != "INBOX") | st.just("INBOX")
keywords = atoms.filter(lambda s: not s.startswith("\\"))
flags = st.sampled_from(SYSTEM) | keywords
nz = st.integers(min_value=1, max_value=2**32 - 1)
modseqs = st.integers(min_value=1, max_value=2**63 - 1)
seq_numbers = nz | st.none()
seq_ranges = st.builds(SeqRange, seq_numbers, seq_numbers)
seqsets = st.builds(lambda rs: SequenceSet(tuple(rs)), st.lists(seq_ranges, min_size=1, max_size=4))
seqsets_or_saved = seqsets | st.just(SequenceSet((), saved=True))
zones = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
date_times = st.builds(
    lambda d, z: DateTime(d.replace(tzinfo=z)),
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
    zones,
)

# ------------------------------------------------------------------ FETCH

parts = st.lists(st.integers(min_value=1, max_value=50), max_size=3).map(tuple)
header_names = st.lists(upper_atoms, min_size=1, max_size=3).map(tuple)
partials = st.none() | st.tuples(st.integers(0, 2**32 - 1), nz)


@st.composite
def sections(draw: st.DrawFn) -> c.Section:
    part = draw(parts)
    choices = ["none", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"]
    if part:
        choices.append("MIME")
    text = draw(st.sampled_from(choices))
    if text == "none":
        return c.Section(part=part)
    fields = draw(header_names) if text.startswith("HEADER.FIELDS") else ()
    return c.Section(part, text, fields)  # type: ignore[arg-type]


body_atts = st.builds(
    lambda s, p, peek: c.FetchBody(s, p, peek=peek), sections(), partials, st.booleans()
)
binary_atts = st.builds(
    lambda part, p, peek: c.FetchBody(c.Section(part=part), p, peek=peek, binary=True),
    parts,
    partials,
    st.booleans(),
) | st.builds(lambda part: c.FetchBody(c.Section(part=part), binary=True, size_only=True), parts)
SIMPLE_ATTS: list[c.FetchAtt] = [
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
    "PREVIEW",
    "PREVIEW (LAZY)",
]
simple_atts = st.sampled_from(SIMPLE_ATTS)
fetch_atts = simple_atts | body_atts | binary_atts


@st.composite
def fetches(draw: st.DrawFn) -> c.Fetch:
    uid = draw(st.booleans())
    changedsince = draw(st.none() | modseqs)
    vanished = uid and changedsince is not None and draw(st.booleans())
    items = tuple(draw(st.lists(fetch_atts, min_size=1, max_size=5)))
    return c.Fetch(draw(tags), draw(seqsets_or_saved), items, uid, changedsince, vanished)


# ------------------------------------------------------------------ SEARCH

iso_dates = st.dates(min_value=datetime(1000, 1, 1).date()).map(lambda d: d.isoformat())
leaf_keys = st.one_of(
    st.just(c.SearchAll()),
    st.just(c.SearchNew()),
    st.just(c.SearchOld()),
    st.builds(c.SearchFlag, st.sampled_from(SYSTEM) | keywords, st.booleans()),
    st.just(c.SearchFlag("\\Recent")),
    st.builds(
        c.SearchHeader, upper_atoms | st.sampled_from(["FROM", "TO", "CC", "BCC", "SUBJECT"]), texts
    ),
    st.builds(c.SearchText, st.sampled_from(["BODY", "TEXT"]), texts),
    st.builds(c.SearchDate, st.sampled_from(["BEFORE", "ON", "SINCE"]), iso_dates, st.booleans()),
    st.builds(
        c.SearchDate,
        st.sampled_from(["BEFORE", "ON", "SINCE"]),
        iso_dates,
        st.just(False),
        st.just(True),
    ),
    st.builds(c.SearchSize, st.booleans(), st.integers(0, 2**63 - 1)),
    st.builds(c.SearchSet, seqsets_or_saved, st.booleans()),
    st.builds(c.SearchModseq, st.integers(0, 2**63 - 1)),
    st.builds(
        c.SearchObjectId,
        st.sampled_from(["EMAILID", "THREADID"]),
        st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
    ),
)
search_keys = st.recursive(
    leaf_keys,
    lambda inner: st.one_of(
        st.builds(c.SearchNot, inner),
        st.builds(c.SearchOr, inner, inner),
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: c.SearchAnd(tuple(ks))),
    ),
    max_leaves=8,
)
searches = st.builds(
    c.Search,
    tags,
    search_keys,
    st.booleans(),
    st.sampled_from([None, "UTF-8"]),
    st.none() | st.lists(st.sampled_from(sorted(SEARCH_RETURN_OPTS)), max_size=3).map(tuple),
)

# ------------------------------------------------------------------ the rest

status_items = st.lists(st.sampled_from(sorted(STATUS_ATTS)), min_size=1, max_size=4).map(tuple)
qresyncs = st.builds(
    c.QresyncParams, nz, modseqs, st.none() | seqsets, st.none() | st.tuples(seqsets, seqsets)
)
list_selections = st.sampled_from(
    [
        (),
        ("SUBSCRIBED",),
        ("REMOTE",),
        ("SPECIAL-USE",),
        ("SUBSCRIBED", "RECURSIVEMATCH"),
        ("RECURSIVEMATCH", "SPECIAL-USE", "REMOTE"),
    ]
)
lists = st.builds(
    lambda tag, ref, pats, sel, ret, stat: c.ListCmd(tag, ref, pats, False, sel, ret, stat),
    tags,
    mailboxes,
    st.lists(mailboxes, min_size=1, max_size=3).map(tuple),
    list_selections,
    st.lists(st.sampled_from(sorted(LIST_RETURN_OPTS)), max_size=3).map(tuple),
    st.just(()) | status_items,
)


@st.composite
def notify_groups(draw: st.DrawFn) -> c.NotifyGroup:
    """A valid event group of NOTIFY SET (RFC 5465): FETCH items only for the
    selected mailbox, FlagChange only with MessageNew and MessageExpunge."""
    kind = draw(
        st.sampled_from(
            [
                "SELECTED",
                "SELECTED-DELAYED",
                "INBOXES",
                "PERSONAL",
                "SUBSCRIBED",
                "SUBTREE",
                "MAILBOXES",
            ]
        )
    )
    boxes = ()
    if kind in ("SUBTREE", "MAILBOXES"):
        boxes = tuple(draw(st.lists(mailboxes, min_size=1, max_size=3)))
    names = ["MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"]
    events = draw(st.lists(st.sampled_from(names), unique=True, max_size=5))
    if {"FlagChange", "MessageNew", "MessageExpunge"} & set(events):  # RFC 5465 §5
        events = [e for e in events if e not in ("MessageNew", "MessageExpunge")]
        events = ["MessageNew", "MessageExpunge", *events]
    fetch: tuple[c.FetchAtt, ...] = ()
    if kind.startswith("SELECTED") and "MessageNew" in events:
        fetch = tuple(draw(st.lists(fetch_atts, max_size=3)))
    return c.NotifyGroup(kind, boxes, tuple(events), fetch)  # type: ignore[arg-type]


# CATENATE parts (RFC 4469): none (a plain literal), or TEXT and URL parts.
cat_parts = st.just(()) | st.lists(
    st.binary(max_size=20) | st.builds(c.CatUrl, texts), min_size=1, max_size=3
).map(tuple)
append_messages = st.builds(
    lambda m, f, d, p: c.AppendMessage(b"" if p else m, f, d, p),  # parts or a literal
    st.binary(max_size=40),
    st.lists(flags, max_size=2).map(tuple),
    st.none() | date_times,
    cat_parts,
)
notifies = st.builds(c.Notify, tags, st.none()) | st.builds(
    c.Notify, tags, st.lists(notify_groups(), min_size=1, max_size=3).map(tuple), st.booleans()
)
id_params = st.none() | st.lists(
    st.tuples(st.text(ATOM_CHARS + " ", max_size=30), st.none() | texts), max_size=5
).map(tuple)

commands = st.one_of(
    st.builds(c.Capability, tags),
    st.builds(c.Noop, tags),
    st.builds(c.Logout, tags),
    st.builds(c.StartTLS, tags),
    st.builds(c.Authenticate, tags, upper_atoms, st.none() | st.binary(max_size=30)),
    st.builds(c.Login, tags, texts, st.builds(Secret, texts)),
    st.builds(c.Select, tags, mailboxes, st.booleans(), st.booleans(), st.none() | qresyncs),
    st.builds(
        c.Create,
        tags,
        mailboxes,
        st.lists(st.sampled_from(["\\Sent", "\\Trash", "\\Drafts", "\\Xfoo"]), max_size=2).map(
            tuple
        ),
    ),
    st.builds(c.Delete, tags, mailboxes),
    st.builds(c.Rename, tags, mailboxes, mailboxes),
    st.builds(c.Subscribe, tags, mailboxes, st.booleans()),
    lists,
    st.builds(lambda t, r, p: c.ListCmd(t, r, (p,), lsub=True), tags, mailboxes, mailboxes),
    st.builds(c.Status, tags, mailboxes, status_items),
    st.builds(
        lambda t, box, m, more: c.Append(
            t, box, m.message, m.flags, m.internaldate, m.parts, more
        ),
        tags,
        mailboxes,
        append_messages,
        st.lists(append_messages, max_size=2).map(tuple),  # MULTIAPPEND
    ),
    st.builds(c.GetQuota, tags, st.just("GETQUOTA"), texts),
    st.builds(c.GetQuota, tags, st.just("GETQUOTAROOT"), mailboxes),
    st.builds(
        c.GetQuota,
        tags,
        st.just("SETQUOTA"),
        texts,
        st.lists(st.tuples(upper_atoms, st.integers(0, 2**63 - 1)), max_size=2).map(tuple),
    ),
    st.builds(c.Check, tags),
    st.builds(c.Close, tags),
    st.builds(c.Unselect, tags),
    st.builds(c.Expunge, tags, st.none() | seqsets_or_saved),
    searches,
    fetches(),
    st.builds(
        c.StoreFlags,
        tags,
        seqsets_or_saved,
        st.sampled_from(["set", "add", "remove"]),
        st.lists(flags, max_size=3).map(tuple),
        st.booleans(),
        st.booleans(),
        st.none() | st.integers(0, 2**63 - 1),
    ),
    st.builds(c.Copy, tags, seqsets_or_saved, mailboxes, st.booleans(), st.booleans()),
    st.builds(c.Idle, tags),
    st.builds(c.Namespace, tags),
    st.builds(c.Id, tags, id_params),
    st.builds(c.Enable, tags, st.lists(upper_atoms, min_size=1, max_size=3).map(tuple)),
    st.builds(c.Compress, tags, upper_atoms),
    notifies,
)


@settings(max_examples=400, deadline=None)
@given(commands, st.booleans())
def test_round_trip(cmd: c.Command, literal_plus: bool) -> None:
    wire = encode_command(cmd, literal_plus=literal_plus)
    assert parse_command(wire) == cmd


@settings(max_examples=150, deadline=None)
@given(commands)
def test_round_trip_through_the_fragmentizer(cmd: c.Command) -> None:
    """The synchronizing form, part by part as a client sends it after each "+"."""
    parts = encode_command_parts(cmd, literal_plus=False)
    f = Fragmentizer()
    for i, part in enumerate(parts):
        f.feed(part)
        expected = NeedContinuation() if i < len(parts) - 1 else CommandReady(b"".join(parts))
        assert f.next_event() == expected
    assert f.next_event() is None
    assert parse_command(b"".join(parts)) == cmd


@settings(max_examples=100, deadline=None)
@given(tags, seqsets, st.sampled_from(sorted(FETCH_MACROS)))
def test_fetch_macros_expand(tag: str, seqset: SequenceSet, macro: str) -> None:
    cmd = parse_command(f"{tag} FETCH {seqset.encode()} {macro}\r\n".encode())
    assert cmd == c.Fetch(tag, seqset, FETCH_MACROS[macro])


def test_encoding_picks_atom_quoted_or_literal() -> None:
    def login(password: str, literal_plus: bool = True) -> bytes:
        return encode_command(c.Login("a", "u", Secret(password)), literal_plus=literal_plus)

    assert login("pw") == b"a LOGIN u pw\r\n"
    assert login("p w") == b'a LOGIN u "p w"\r\n'
    assert login("") == b'a LOGIN u ""\r\n'
    assert login('a"b\\') == b'a LOGIN u "a\\"b\\\\"\r\n'
    assert login("ä") == b"a LOGIN u {2+}\r\n\xc3\xa4\r\n"
    assert login("a\nb", literal_plus=False) == b"a LOGIN u {3}\r\na\nb\r\n"
    assert login("x" * 2000).startswith(b"a LOGIN u {2000+}\r\n")  # long: literal
    assert login("x " * 1000).startswith(b"a LOGIN u {2000+}\r\n")
    parts = encode_command_parts(c.Rename("t", "ä\n", "b\r"), literal_plus=False)
    assert len(parts) == 1  # mailbox names are modified UTF-7: never literals
