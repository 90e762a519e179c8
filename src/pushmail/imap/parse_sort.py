"""The grammar of SORT and THREAD (RFC 5256 §5, RFC 5957 §3, ESORT RFC 5267 §3.1).

sort            = ["UID" SP] "SORT" [SP "RETURN" SP "(" [sort-return-opt
                  *(SP sort-return-opt)] ")"] SP sort-criteria SP search-criteria
sort-criteria   = "(" sort-criterion *(SP sort-criterion) ")"
sort-criterion  = ["REVERSE" SP] sort-key
sort-key        = "ARRIVAL" / "CC" / "DATE" / "FROM" / "SIZE" / "SUBJECT" / "TO" /
                  "DISPLAYFROM" / "DISPLAYTO"
thread          = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
search-criteria = charset 1*(SP search-key)      ; the CHARSET word is absent here

Unlike SEARCH, the charset is mandatory; only UTF-8 and US-ASCII are accepted
(RFC 5256 §3: a server MUST support those two), anything else is a tagged
``NO [BADCHARSET]``, decided by the handler.
"""

from __future__ import annotations

from typing import Literal

from pushmail.imap.commands import SORT_KEYS, SearchAnd, SearchKey, Sort, SortCriterion, Thread
from pushmail.imap.parse_lexer import Reader, paren_list, parse_quoted, parse_upper_atom
from pushmail.imap.parse_search import _Ctx, parse_search_key

SORT_RETURN_OPTS = frozenset({"MIN", "MAX", "ALL", "COUNT"})  # RFC 5267 §3.1
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


def _criterion(r: Reader) -> SortCriterion:
    word = parse_upper_atom(r)
    reverse = word == "REVERSE"
    if reverse:
        r.sp()
        word = parse_upper_atom(r)
    if word not in SORT_KEYS:
        r.fail(f"unknown sort key {word}")
    return SortCriterion(word, reverse)


def _charset(r: Reader) -> str:
    """The charset name, upper-cased; not checked here (see module notes)."""
    raw = parse_quoted(r) if r.at(b'"') else parse_upper_atom(r).encode()
    return raw.decode("ascii", "replace").upper()


def _criteria(r: Reader) -> tuple[str, SearchKey]:
    charset = _charset(r)
    # A charset we do not decode is refused later, so its keys are read as UTF-8.
    ctx = _Ctx("utf-8")
    r.sp()
    keys = [parse_search_key(r, ctx)]
    while r.skip(b" "):
        keys.append(parse_search_key(r, ctx))
    return charset, keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))


def _returns(r: Reader) -> tuple[str, ...]:
    r.pos += len("RETURN")
    r.sp()

    def one(rr: Reader) -> str:
        opt = parse_upper_atom(rr)
        if opt not in SORT_RETURN_OPTS:
            rr.fail(f"unknown sort return option {opt}")
        return opt

    return tuple(paren_list(r, one, empty_ok=True))


def parse_sort(r: Reader, tag: str, uid: bool) -> Sort:
    r.sp()
    returns: tuple[str, ...] | None = None
    if r.at_word(b"RETURN"):
        returns = _returns(r)
        r.sp()
    criteria = tuple(paren_list(r, _criterion, False))
    r.sp()
    charset, key = _criteria(r)
    return Sort(tag, criteria, charset, key, uid=uid, returns=returns)


def parse_thread(r: Reader, tag: str, uid: bool) -> Thread:
    r.sp()
    word = parse_upper_atom(r)
    if word not in THREAD_ALGORITHMS:
        r.fail(f"unknown thread algorithm {word}")
    algorithm: Literal["ORDEREDSUBJECT", "REFERENCES"] = (
        "ORDEREDSUBJECT" if word == "ORDEREDSUBJECT" else "REFERENCES"
    )
    r.sp()
    charset, key = _criteria(r)
    return Thread(tag, algorithm, charset, key, uid=uid)
