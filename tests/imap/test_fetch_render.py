"""FETCH response data: item names, literals, laziness (RFC 3501 §7.4.2, RFC 3516)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pushmail.imap.commands import FetchAtt, FetchBody, Section
from pushmail.imap.errors import CommandFailed
from pushmail.imap.fetch_render import FetchContext, render_fetch
from pushmail.imap.structure import build_cache
from pushmail.store.interfaces import MessageCache

DATA = Path(__file__).parents[1] / "mime" / "data"


def _eml(name: str) -> bytes:
    return (DATA / f"{name}.eml").read_bytes().replace(b"\n", b"\r\n")


class Counter:
    """Counts how often the store would be asked for the body and the cache."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.raw_calls = 0
        self.cache_calls = 0

    def get_raw(self) -> bytes:
        self.raw_calls += 1
        return self.raw

    def get_cache(self) -> MessageCache:
        self.cache_calls += 1
        return build_cache(self.raw)


def _ctx(raw: bytes, flags: frozenset[str] = frozenset()) -> tuple[FetchContext, Counter]:
    counter = Counter(raw)
    ctx = FetchContext(
        seq=3,
        uid=42,
        flags=flags,
        internaldate=datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7))),
        size=len(raw),
        modseq=917,
        get_raw=counter.get_raw,
        get_cache=counter.get_cache,
    )
    return ctx, counter


def test_simple_items_do_not_touch_the_body() -> None:
    raw = _eml("rfc3501_envelope")
    ctx, counter = _ctx(raw, frozenset({"\\Seen", "\\Answered"}))
    items: list[FetchAtt] = ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"]
    assert render_fetch(items, ctx) == (
        b'(UID 42 FLAGS (\\Answered \\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
        b"RFC822.SIZE %d MODSEQ (917))" % len(raw)
    )
    assert (counter.raw_calls, counter.cache_calls) == (0, 0)


def test_envelope_and_structure_come_from_the_cache() -> None:
    raw = _eml("rfc3501_envelope")
    ctx, counter = _ctx(raw)
    out = render_fetch(["ENVELOPE", "BODYSTRUCTURE", "BODY"], ctx)
    cache = build_cache(raw)
    assert out == (
        b"(ENVELOPE "
        + cache.envelope
        + b" BODYSTRUCTURE "
        + cache.bodystructure
        + b" BODY "
        + cache.body
        + b")"
    )
    assert (counter.raw_calls, counter.cache_calls) == (0, 1)


def test_body_sections_are_literals_named_as_the_rfc_says() -> None:
    raw = _eml("nested")
    ctx, counter = _ctx(raw)
    items: list[FetchAtt] = [
        FetchBody(Section(part=(1,)), peek=True),
        FetchBody(Section(text="HEADER.FIELDS", fields=("SUBJECT", "X-NONE"))),
        FetchBody(Section(part=(4, 1), text="MIME")),
        FetchBody(Section(), partial=(0, 4)),
        FetchBody(Section(part=(3,), text="TEXT"), partial=(2, 5)),
    ]
    mime = b"Content-Type: IMAGE/GIF\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    assert render_fetch(items, ctx) == (
        b"(BODY[1] {9}\r\nPart one. "
        b"BODY[HEADER.FIELDS (SUBJECT X-NONE)] {51}\r\n"
        b"Subject: Section numbering as in RFC 3501 6.4.5\r\n\r\n "
        b"BODY[4.1.MIME] {%d}\r\n" % len(mime) + mime + b" "
        b"BODY[]<0> {4}\r\nFrom "
        b"BODY[3.TEXT]<2> {5}\r\nthree)"
    )
    assert counter.raw_calls == 1  # read once for all five items


def test_missing_section_is_nil() -> None:
    ctx, _ = _ctx(_eml("simple"))
    items: list[FetchAtt] = [
        FetchBody(Section(part=(2,))),
        FetchBody(Section(part=(7,)), partial=(0, 10)),
    ]
    assert render_fetch(items, ctx) == b"(BODY[2] NIL BODY[7]<0> NIL)"


def test_rfc822_items() -> None:
    raw = _eml("simple")
    ctx, _ = _ctx(raw)
    body = b"Just a line.\r\nAnd another\r\n"
    header = raw[: -len(body)]
    assert render_fetch(["RFC822.HEADER", "RFC822.TEXT", "RFC822"], ctx) == (
        b"(RFC822.HEADER {%d}\r\n" % len(header)
        + header
        + b" RFC822.TEXT {%d}\r\n" % len(body)
        + body
        + b" RFC822 {%d}\r\n" % len(raw)
        + raw
        + b")"
    )


def test_binary_and_binary_size() -> None:
    ctx, _ = _ctx(_eml("nested"))
    items: list[FetchAtt] = [
        FetchBody(Section(part=(2,)), binary=True, peek=True),
        FetchBody(Section(part=(2,)), binary=True, size_only=True),
        FetchBody(Section(part=(3, 2)), binary=True),
        FetchBody(Section(part=(2,)), binary=True, partial=(1, 2)),
        FetchBody(Section(part=(8,)), binary=True, size_only=True),
    ]
    assert render_fetch(items, ctx) == (
        b"(BINARY[2] ~{6}\r\n\x00\x01\x02\x03\x04\x05 BINARY.SIZE[2] 6 "
        b"BINARY[3.2] {3}\r\na=b BINARY[2]<1> {2}\r\n\x01\x02 BINARY.SIZE[8] 0)"
    )


def test_binary_unknown_cte_is_no_unknown_cte() -> None:
    ctx, _ = _ctx(_eml("broken"))
    with pytest.raises(CommandFailed) as err:
        render_fetch([FetchBody(Section(part=(3,)), binary=True)], ctx)
    assert err.value.code == "UNKNOWN-CTE"


def test_savedate_nil_unless_known() -> None:
    ctx, _ = _ctx(b"x")
    assert render_fetch(["SAVEDATE"], ctx) == b"(SAVEDATE NIL)"
    ctx.savedate = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert render_fetch(["SAVEDATE"], ctx) == b'(SAVEDATE " 2-Jan-2024 03:04:05 +0000")'


def test_preview_stored_lazy_and_made_on_demand() -> None:
    raw = b"Subject: x\r\n\r\nnot stored yet\r\n"
    ctx, counter = _ctx(raw)
    ctx.get_cache = lambda: MessageCache(b"(NIL)", b"(NIL)", b"(NIL)", "stored \u00e9")
    assert render_fetch(["PREVIEW"], ctx) == b"(PREVIEW {9}\r\nstored \xc3\xa9)"
    assert counter.raw_calls == 0  # a stored preview never reads the text
    ctx, counter = _ctx(raw)
    ctx.get_cache = lambda: MessageCache(b"(NIL)", b"(NIL)", b"(NIL)", None)
    assert render_fetch(["PREVIEW (LAZY)"], ctx) == b"(PREVIEW NIL)"
    assert counter.raw_calls == 0
    assert render_fetch(["PREVIEW"], ctx) == b'(PREVIEW "not stored yet")'
