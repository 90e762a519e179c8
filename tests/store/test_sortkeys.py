"""The sort keys kept per message text (store/sortkeys.py): base subject (RFC 5256
§2.1), addresses (§3, RFC 5957), dates, Message-ID and References."""

from __future__ import annotations

import pytest

from pushmail.store.interfaces import MessageCache, NewMessage, Store
from pushmail.store.sortkeys import base_subject, casemap, extract
from pushmail.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("hello", "hello", False),
        ("Re: hello", "hello", True),
        ("RE:hello", "hello", True),
        ("re : hello", "hello", True),  # subj-refwd allows WSP before ":"
        ("Fw: Fwd: FWD: hello", "hello", True),
        ("Re[2]: hello", "hello", True),  # a blob between "re" and ":"
        ("[list] Re: hello", "hello", True),
        ("Re: [list] hello", "hello", True),  # step 4: a leading blob goes
        ("[list]", "[list]", False),  # ... unless nothing would be left
        ("Re: [list]  ", "[list]", True),
        ("hello (fwd)", "hello", True),  # step 2: trailer
        ("hello (FWD) (fwd)  ", "hello", True),
        ("[Fwd: Re: hello]", "hello", True),  # step 6, then again from step 2
        ("[fwd: [fwd: hello (fwd)]]", "hello", True),
        ("  hello \t  world  ", "hello world", False),  # step 1: whitespace
        ("Rex: hello", "Rex: hello", False),
        ("Fwdx hello", "Fwdx hello", False),
        ("", "", False),
        ("Re:", "", True),
    ],
)
def test_base_subject(subject: str, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def test_casemap_is_titlecase_then_decomposed() -> None:
    assert casemap("abc") == "ABC"
    assert casemap("café") == "CAFE\u0301"
    assert casemap("ß") == "ß"  # the simple mapping: no "SS"
    assert casemap("_a") > casemap("Z")  # "_" (0x5F) sorts after letters, as Dovecot


def _raw(headers: str) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n\r\nbody\r\n"


def test_extract_keys() -> None:
    k = extract(_raw(
        "Subject: =?utf-8?q?Re=3A_caf=C3=A9?=\n"
        'From: "Bob B" <bob@x.org>, other@x.org\n'
        "To: team: <ann@y.org>;\n"
        "Cc: <carl@z.org>\n"
        "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
        "Message-ID: <1@x>\n"
        "References: <0@x>\n  <9@y> junk <nohost>\n"
        "In-Reply-To: <8@x>"
    ))
    assert (k.subject, k.reply) == ("CAFE\u0301", True)
    assert (k.from_, k.display_from) == ("BOB", "BOB B")
    assert (k.to, k.display_to) == ("TEAM", "TEAM")  # a group: its name, as ENVELOPE
    assert k.cc == "CARL"
    assert k.sent == 760686745  # UTC
    assert k.message_id == "1@x"
    assert k.references == ("0@x", "9@y")


def test_extract_fallbacks() -> None:
    k = extract(_raw("Subject: x\nIn-Reply-To: <p@x> <q@x>\nDate: garbage\nFrom: <a@b.c>"))
    assert k.references == ("p@x",)  # In-Reply-To's first id when no References
    assert k.sent is None and k.message_id is None
    assert (k.from_, k.display_from) == ("A", "A@B.C")  # no name: the addr-spec
    empty = extract(b"no header at all")
    assert (empty.subject, empty.from_, empty.to, empty.references) == ("", "", "", ())


# -- kept by both backends ---------------------------------------------------------

_MSG = _raw("Subject: Re: Hello\nFrom: Ann <ann@x.org>\nMessage-ID: <1@x>\nReferences: <0@x>")


def _forget_keys(store: Store) -> None:
    """As for texts stored before the ``sortkeys`` table existed."""
    if isinstance(store, SqliteStore):
        store._conn.execute("DELETE FROM sortkeys")
    else:
        store._write(lambda conn: conn.execute("DELETE FROM sortkeys"))  # type: ignore[attr-defined]


def test_keys_are_kept_at_delivery_and_filled_for_older_texts(store: Store) -> None:
    user = store.create_user("k@example.org", "x")
    box = store.get_mailbox(user.id, "INBOX")
    assert box is not None
    cache = MessageCache(b"(NIL)", b'("TEXT" "PLAIN")', b'("TEXT" "PLAIN")')
    store.append(box.id, NewMessage(_MSG, cache))
    store.append(box.id, NewMessage(b"Subject: two\r\n\r\nx", cache))
    kept = store.sort_keys(box.id)
    assert {u: e.keys for u, e in kept.items()} == {
        1: extract(_MSG), 2: extract(b"Subject: two\r\n\r\nx")
    }
    assert kept[1].keys.subject == "HELLO" and kept[1].keys.display_from == "ANN"
    assert kept[2].size == len(b"Subject: two\r\n\r\nx") and kept[2].arrival > 0
    assert store.sort_keys(box.id, [2, 7]) == {2: kept[2]}
    _forget_keys(store)
    assert store.sort_keys(box.id) == kept  # computed again from the texts ...
    assert store.sort_keys(box.id) == kept  # ... and stored (read back)
