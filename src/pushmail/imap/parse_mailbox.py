"""The grammar of the mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS and APPEND (RFC 3501 §6.3, LIST-EXTENDED
RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154, CONDSTORE/QRESYNC RFC 7162,
BINARY RFC 3516, UTF8=ACCEPT RFC 6855).

One function per ABNF rule, the rule in its docstring (design.md rule 6). Option names are
checked against what we know: RFC 5258 says an unknown selection option is a BAD.
"""

from __future__ import annotations

from pushmail.imap.commands import (
    Create,
    Delete,
    ListCmd,
    QresyncParams,
    Rename,
    Select,
    Status,
    Subscribe,
)
from pushmail.imap.parse_lexer import (
    Reader,
    paren_list,
    parse_atom,
    parse_list_mailbox,
    parse_mailbox,
    parse_mod_sequence_value,
    parse_nz_number,
    parse_sequence_set,
    parse_upper_atom,
)
from pushmail.imap.types import SequenceSet

STATUS_ATTS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "HIGHESTMODSEQ",  # RFC 7162
        "SIZE",  # RFC 8438
        "DELETED",  # RFC 9051
        "DELETED-STORAGE",  # RFC 9208
        "APPENDLIMIT",  # RFC 7889
        "MAILBOXID",  # RFC 8474
    }
)
LIST_SELECT_BASE = frozenset({"SUBSCRIBED", "SPECIAL-USE"})
LIST_SELECT_OPTS = LIST_SELECT_BASE | {"REMOTE", "RECURSIVEMATCH"}
LIST_RETURN_OPTS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})
# RFC 6154 §2: the special-use attributes, in their canonical spelling.
_USE_ATTRS = {
    a.lower(): a
    for a in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}


def parse_seq_match_data(r: Reader) -> tuple[SequenceSet, SequenceSet]:
    """seq-match-data = "(" known-sequence-set SP known-uid-set ")"   ; RFC 7162"""
    r.expect(b"(", '"(" to start seq-match-data')
    seqs = parse_sequence_set(r)
    r.sp()
    uids = parse_sequence_set(r)
    r.expect(b")", '")" to end seq-match-data')
    return seqs, uids


def parse_qresync_params(r: Reader) -> QresyncParams:
    """ "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
    [SP seq-match-data] ")"      ; RFC 7162; uidvalidity = nz-number"""
    r.sp()
    r.expect(b"(", '"(" after QRESYNC')
    uidvalidity = parse_nz_number(r)
    r.sp()
    modseq = parse_mod_sequence_value(r)
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if r.skip(b" ") and not r.at(b"("):
        known = parse_sequence_set(r)
        if r.skip(b" ") and not r.at(b"("):
            r.fail('expected "(" to start seq-match-data')
    if r.at(b"("):
        match = parse_seq_match_data(r)
    r.expect(b")", '")" to end the QRESYNC parameters')
    return QresyncParams(uidvalidity, modseq, known, match)


def parse_select(r: Reader, tag: str, readonly: bool) -> Select:
    """select = "SELECT" SP mailbox [select-params] ; examine likewise
    select-params = SP "(" select-param *(SP select-param) ")"
    select-param = "CONDSTORE" / "QRESYNC" SP "(" ... ")"        ; RFC 4466, RFC 7162"""
    r.sp()
    mailbox = parse_mailbox(r)
    condstore = False
    qresync: QresyncParams | None = None
    if r.skip(b" "):

        def one(rr: Reader) -> None:
            nonlocal condstore, qresync
            name = parse_upper_atom(rr)
            if name == "CONDSTORE" and not condstore:
                condstore = True
            elif name == "QRESYNC" and qresync is None:
                qresync = parse_qresync_params(rr)
            else:
                rr.fail(f"unknown or repeated select parameter {name}")

        paren_list(r, one, empty_ok=False)
    return Select(tag, mailbox, readonly=readonly, condstore=condstore, qresync=qresync)


def parse_use_attr(r: Reader) -> str:
    """use-attr = "\\All" / "\\Archive" / "\\Drafts" / "\\Flagged" / "\\Junk" /
    "\\Sent" / "\\Trash" / use-attr-ext ; use-attr-ext = "\\" atom  (RFC 6154)"""
    r.expect(b"\\", 'a "\\" special-use attribute')
    attr = "\\" + parse_atom(r)
    return _USE_ATTRS.get(attr.lower(), attr)


def parse_create(r: Reader, tag: str) -> Create:
    """create = "CREATE" SP mailbox [create-params]
    create-params = SP "(" create-param *(SP create-param) ")"
    create-param = "USE" SP "(" [use-attr *(SP use-attr)] ")"          ; RFC 6154"""
    r.sp()
    mailbox = parse_mailbox(r)
    uses: list[str] = []
    if r.skip(b" "):

        def one(rr: Reader) -> None:
            if parse_upper_atom(rr) != "USE":
                rr.fail("unknown CREATE parameter")
            rr.sp()
            uses.extend(paren_list(rr, parse_use_attr, empty_ok=True))

        paren_list(r, one, empty_ok=False)
    return Create(tag, mailbox, special_use=tuple(uses))


def parse_delete(r: Reader, tag: str) -> Delete:
    """delete = "DELETE" SP mailbox"""
    r.sp()
    return Delete(tag, parse_mailbox(r))


def parse_rename(r: Reader, tag: str) -> Rename:
    """rename = "RENAME" SP mailbox SP mailbox"""
    r.sp()
    old = parse_mailbox(r)
    r.sp()
    return Rename(tag, old, parse_mailbox(r))


def parse_subscribe(r: Reader, tag: str, subscribe: bool) -> Subscribe:
    """subscribe = "SUBSCRIBE" SP mailbox ; unsubscribe = "UNSUBSCRIBE" SP mailbox"""
    r.sp()
    return Subscribe(tag, parse_mailbox(r), subscribe=subscribe)


def parse_status_att(r: Reader) -> str:
    """status-att = "MESSAGES" / "RECENT" / "UIDNEXT" / "UIDVALIDITY" / "UNSEEN" /
    "HIGHESTMODSEQ" / "SIZE" / "DELETED" / "APPENDLIMIT" """
    att = parse_upper_atom(r)
    if att not in STATUS_ATTS:
        r.fail(f"unknown status attribute {att}")
    return att


def parse_status(r: Reader, tag: str) -> Status:
    """status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")" """
    r.sp()
    mailbox = parse_mailbox(r)
    r.sp()
    return Status(tag, mailbox, tuple(paren_list(r, parse_status_att, empty_ok=False)))


def parse_list_select_opts(r: Reader) -> tuple[str, ...]:
    """list-select-opts = "(" [(*(list-select-mod SP) list-select-base-opt
        *(SP list-select-opt)) / (list-select-independent-opt
        *(SP list-select-independent-opt))] ")"     ; RFC 5258, RFC 6154
    A modifier (RECURSIVEMATCH) needs a base option (SUBSCRIBED, SPECIAL-USE)."""

    def one(rr: Reader) -> str:
        opt = parse_upper_atom(rr)
        if opt not in LIST_SELECT_OPTS:
            rr.fail(f"unknown LIST selection option {opt}")
        return opt

    opts = tuple(paren_list(r, one, empty_ok=True))
    if "RECURSIVEMATCH" in opts and not LIST_SELECT_BASE.intersection(opts):
        r.fail("RECURSIVEMATCH needs SUBSCRIBED or SPECIAL-USE")
    return opts


def parse_list_return_opts(r: Reader) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
    return-option = "SUBSCRIBED" / "CHILDREN" / "SPECIAL-USE" /
                    "STATUS" SP "(" status-att *(SP status-att) ")"   ; RFC 5819
    Returns (options, status attributes)."""
    r.pos += len("RETURN")
    r.sp()
    status: list[str] = []

    def one(rr: Reader) -> str:
        opt = parse_upper_atom(rr)
        if opt == "STATUS" and not status:
            rr.sp()
            status.extend(paren_list(rr, parse_status_att, empty_ok=False))
        elif opt not in LIST_RETURN_OPTS:
            rr.fail(f"unknown or repeated LIST return option {opt}")
        return opt

    opts = [o for o in paren_list(r, one, empty_ok=True) if o != "STATUS"]
    return tuple(opts), tuple(status)


def parse_mbox_or_pat(r: Reader) -> tuple[str, ...]:
    """mbox-or-pat = list-mailbox / patterns
    patterns = "(" list-mailbox *(SP list-mailbox) ")"          ; RFC 5258"""
    if r.at(b"("):
        return tuple(paren_list(r, parse_list_mailbox, empty_ok=False))
    return (parse_list_mailbox(r),)


def parse_list(r: Reader, tag: str) -> ListCmd:
    """list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
    [SP list-return-opts]"""
    r.sp()
    selection: tuple[str, ...] = ()
    if r.at(b"("):
        selection = parse_list_select_opts(r)
        r.sp()
    reference = parse_mailbox(r)
    r.sp()
    patterns = parse_mbox_or_pat(r)
    returns: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    if r.skip(b" "):
        if not r.at_word(b"RETURN"):
            r.fail("expected RETURN")
        returns, status = parse_list_return_opts(r)
    return ListCmd(
        tag, reference, patterns, selection=selection, returns=returns, status_items=status
    )


def parse_lsub(r: Reader, tag: str) -> ListCmd:
    """lsub = "LSUB" SP mailbox SP list-mailbox"""
    r.sp()
    reference = parse_mailbox(r)
    r.sp()
    return ListCmd(tag, reference, (parse_list_mailbox(r),), lsub=True)
