"""A deterministic corpus for SORT and THREAD differential checks (RFC 5256, 5957).

``messages(n, seed)`` makes ``n`` messages that exercise every sort key and the
REFERENCES algorithm's hard cases: Re:/Fwd:/[blob] subject prefixes, "(fwd)"
trailers, "[Fwd: …]" wrappers, encoded words and non-ASCII text, display names
(quoted, encoded, empty), groups, missing headers, Date: in many zones (missing,
malformed, obsolete forms, equal instants), duplicate and missing Message-IDs,
References to messages that are not there, reference loops, In-Reply-To only,
and bodies of many sizes.
"""

from __future__ import annotations

import base64
import random

WORDS = [
    "meeting", "Budget", "report", "lunch", "release 2.0", "bug #42", "Weekly sync",
    "café", "Straße", "übung", "αβγ notes", "日本語", "zebra", "apple", "Apple",
    "_under", "42 answers", "hello world", "HELLO WORLD", "ärger", "Éclair", "offsite",
]
PREFIXES = [
    "", "", "", "Re: ", "RE: ", "re:", "Fwd: ", "Fw: ", "FWD: ", "[list] ", "[list] Re: ",
    "Re: [list] ", "Re[2]: ", "Re: Re: ", "[PATCH 1/2] ", "Fwd: Re: ", "  ", "re [x]: ",
    "[a][b] ", "Re : ",
]
SUFFIXES = ["", "", "", " (fwd)", " (FWD)", "  ", "\t", " (fwd) (fwd)", " [x]"]
NAMES = ["", "", "Zoë Adams", "bob", "Bob", "\"Smith, John\"", "=?utf-8?q?=C3=89mile?=",
         "ALICE", "alice", "  ", "Ünal", "_x", "\"\""]
LOCALS = ["alice", "Bob", "carol", "zed", "Émile", "adam", "_root", "99", "BOB", "x.y"]
HOSTS = ["example.org", "Example.COM", "b.net", "a.io"]
ZONES = ["+0000", "-0800", "+0530", "+1400", "-1200", "GMT", "EST", "UT", "+0100", "-0000"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _encode(text: str, rng: random.Random) -> str:
    if text.isascii() and rng.random() < 0.8:
        return text
    if rng.random() < 0.5:
        return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="
    q = "".join(
        c if c.isalnum() and c.isascii() else "".join(f"={b:02X}" for b in c.encode())
        for c in text
    )
    return "=?utf-8?q?" + q + "?="


def _subject(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.03:
        return None
    if r < 0.06:
        return ""
    base = rng.choice(WORDS)
    text = rng.choice(PREFIXES) + base + rng.choice(SUFFIXES)
    if rng.random() < 0.08:
        text = "[Fwd: " + text + "]"
    if rng.random() < 0.3:
        return " ".join(_encode(w, rng) for w in text.split(" "))
    return text


def _address(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    spec = f"{rng.choice(LOCALS)}@{rng.choice(HOSTS)}"
    if not name.strip():
        return spec if rng.random() < 0.7 else f"<{spec}>"
    return f"{_encode(name, rng) if name[0] != '=' else name} <{spec}>"


def _addresses(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.08:
        return None
    if r < 0.12:
        return f"team: {_address(rng)}, {_address(rng)};"
    if r < 0.15:
        return "undisclosed-recipients:;"
    return ", ".join(_address(rng) for _ in range(rng.choice([1, 1, 1, 2, 3])))


def _date(rng: random.Random, n: int) -> str | None:
    r = rng.random()
    if r < 0.04:
        return None
    if r < 0.07:
        return rng.choice(["garbage", "Mon, 32 Foo 2021", "yesterday at noon", ""])
    if r < 0.12:
        return "Sat, 1 Jan 2022 00:00:00 +0000"  # ties
    day, month, year = rng.randint(1, 28), rng.choice(MONTHS), rng.randint(2019, 2023)
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    zone = rng.choice(ZONES)
    if rng.random() < 0.1:
        return f"{day} {month} {year % 100:02d} {hh:02d}:{mm:02d} {zone}"
    return f"Mon, {day} {month} {year} {hh:02d}:{mm:02d}:{ss:02d} {zone}"


def messages(n: int, seed: int = 5256) -> list[bytes]:
    rng = random.Random(seed)
    ids: list[str] = []
    out: list[bytes] = []
    for i in range(n):
        own = f"m{i}.{rng.randint(0, 9999)}@sort.test"
        looped = i % 97 == 6  # the message the one before refers to; it refers back
        if looped:
            own = f"future{i}@sort.test"
        headers: list[tuple[str, str | None]] = []
        r = rng.random()
        if r < 0.03:
            mid: str | None = None
        elif r < 0.06 and ids:
            mid = rng.choice(ids)  # a duplicate Message-ID
        elif r < 0.08:
            mid = "no-brackets@sort.test"
        else:
            mid = own
            ids.append(own)
        headers.append(("Message-ID", None if mid is None else
                        (mid if mid.startswith("no-") else f"<{mid}>")))
        refs: list[str] = []
        r = rng.random()
        if ids and r < 0.55:
            parent = rng.choice(ids[-40:])
            depth = rng.randint(0, 4)
            refs = [f"gone{rng.randint(0, 30)}@sort.test" for _ in range(depth // 3)]
            refs += [rng.choice(ids) for _ in range(depth)] + [parent]
            if rng.random() < 0.05:
                refs.append(own)  # a message that refers to itself
            if rng.random() < 0.05:
                refs.append(f"future{i + 1}@sort.test")
        if refs:
            if rng.random() < 0.2:
                headers.append(("In-Reply-To", f"<{refs[-1]}>"))
            else:
                headers.append(("References", " ".join(f"<{x}>" for x in refs)))
                if rng.random() < 0.3:
                    headers.append(("In-Reply-To", f"<{rng.choice(ids)}>"))
        elif ids and rng.random() < 0.1:
            headers.append(("In-Reply-To", f"<{rng.choice(ids)}> (comment) <x@y>"))
        if i % 97 == 5:  # a loop: this one refers to the next, which refers back
            headers = [h for h in headers if h[0] not in ("References", "In-Reply-To")]
            headers.append(("References", f"<future{i + 1}@sort.test>"))
        if looped and mid == own and len(ids) > 1:
            headers = [h for h in headers if h[0] not in ("References", "In-Reply-To")]
            headers.append(("References", f"<{ids[-2]}>"))
        headers += [
            ("Subject", _subject(rng)),
            ("From", _addresses(rng)),
            ("To", _addresses(rng)),
            ("Cc", _addresses(rng) if rng.random() < 0.4 else None),
            ("Date", _date(rng, i)),
        ]
        text = "".join(f"{k}: {v}\r\n" for k, v in headers if v is not None)
        body = "x" * rng.choice([1, 10, 100, 1000, rng.randint(1, 5000)])
        out.append((text + "\r\n" + body + "\r\n").encode())
    return out


def internal_date(i: int) -> str:
    """The INTERNALDATE message ``i`` is APPENDed with: a few minutes of 2024, with
    ties (ARRIVAL's tie-break is tested too) and zones that do not change the order."""
    minute, second = (i * 7) % 50 // 60, (i * 7) % 50
    zone = ("+0000", "+0200", "-0500")[i % 3]
    hour = {"+0000": 12, "+0200": 14, "-0500": 7}[zone]
    return f"01-Feb-2024 {hour:02d}:{minute:02d}:{second:02d} {zone}"
