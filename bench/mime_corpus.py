"""A deterministic corpus of messages shaped like real mail, for differential tests.

Every message is one *header variant* (addresses, subjects, dates: encoded words,
groups, comments, source routes, raw 8-bit text, folds, missing fields) joined with
one *body variant* (MIME shapes: folded and RFC 2231 parameters, nested
message/rfc822, broken multiparts, 8-bit and NUL content, long lines, odd encodings).
Message ``i`` takes header ``i mod H`` and body ``(i * 7) mod B``, so each body shape
meets many header shapes. Everything here is written for pushmail; nothing is taken
from another project's test data.

Each sample carries the strings a SEARCH should (or should not) find in it, so a
differential test can compare SEARCH FROM/TO/SUBJECT/BODY/TEXT between servers.

``python bench/mime_corpus.py OUTDIR`` writes the corpus as ``NNN-name.eml`` files.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

CRLF = "\r\n"


@dataclass(frozen=True, slots=True)
class Sample:
    name: str  # stable: the accepted-differences table refers to messages by it
    raw: bytes
    needles: dict[str, list[str]] = field(default_factory=dict)  # search key -> strings


@dataclass(frozen=True, slots=True)
class _Head:
    name: str
    lines: list[str]  # header lines (may hold folds and raw 8-bit text)
    needles: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class _Body:
    name: str
    content_header: list[str]  # top-level MIME header lines
    # None: no blank line, all header. May hold NUL and 8-bit (kept as Latin-1).
    body: str | None
    needles: list[str]


def _lat(text: str) -> str:
    """UTF-8 bytes of ``text`` as Latin-1 characters: raw 8-bit header/body text that
    survives the final ``encode("latin-1")`` unchanged."""
    return text.encode("utf-8").decode("latin-1")


def _heads() -> list[_Head]:
    h = _Head
    return [
        h(
            "plain",
            [
                "From: Alice Example <alice@example.org>",
                "To: bob@example.net",
                "Subject: Quarterly figures",
                "Date: Mon, 7 Dec 2026 10:00:00 +0100",
                "Message-ID: <plain.1@example.org>",
            ],
            {
                "FROM": ["alice@example.org", "Alice"],
                "TO": ["bob@example.net"],
                "SUBJECT": ["Quarterly"],
            },
        ),
        h(
            "raw8bit-name",
            [
                _lat('From: "Müller, Jürgen" <juergen@example.de>'),
                "To: team@example.de",
                _lat("Subject: Grüße aus Köln"),
                "Date: Tue, 8 Dec 2026 09:15:00 +0100",
            ],
            {
                "FROM": ["juergen@example.de", "Jürgen"],
                "TO": ["team@example.de"],
                "SUBJECT": ["Köln", "Grüße"],
            },
        ),
        h(
            "encoded-words",
            [
                "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>",
                "To: =?iso-8859-1?b?Q2Fm6SBDcuhtZQ==?= <cafe@example.fr>",
                "Subject: =?utf-8?b?UmVjaG51bmcgZsO8ciBEZXplbWJlcg==?=",
                "Date: Wed, 9 Dec 2026 08:00:00 +0000",
            ],
            {
                "FROM": ["Jürgen Müller", "jm@example.de"],
                "TO": ["Café", "cafe@example.fr"],
                "SUBJECT": ["für Dezember", "Rechnung"],
            },
        ),
        h(
            "addr-comments",
            [
                "From: <user-from (comment)@ (comment) domain.org>",
                "To: (lead) bob (middle) @ (domain) example.net (trail)",
                "Subject: comments in addresses",
            ],
            {
                "FROM": ["user-from@domain.org", "user-from"],
                "TO": ["bob@example.net"],
                "SUBJECT": ["comments"],
            },
        ),
        h(
            "source-route",
            [
                "From: Routed <@relay.example.com,@gw.example.net:user@domain.org>",
                "To: <@route:dest@example.org>",
                "Subject: source routes",
                "Date: Thu, 10 Dec 2026 12:00:00 -0500",
            ],
            {
                "FROM": ["user@domain.org", "Routed"],
                "TO": ["dest@example.org"],
                "SUBJECT": ["routes"],
            },
        ),
        h(
            "groups",
            [
                "From: announce@example.org",
                "To: undisclosed-recipients:;",
                'Cc: Friends: ann@example.org, "Bo B" <bo@example.org>;, eve@example.com',
                "Subject: group syntax",
            ],
            {"FROM": ["announce"], "TO": ["undisclosed"], "SUBJECT": ["group syntax"]},
        ),
        h(
            "comment-name",
            [
                "From: carol@example.com (Carol Comment)",
                "To: dave@example.com (Dave), erin@example.com",
                "Subject: trailing comments",
            ],
            {
                "FROM": ["carol@example.com", "Carol"],
                "TO": ["erin@example.com", "Dave"],
                "SUBJECT": ["trailing"],
            },
        ),
        h(
            "no-from",
            [
                "To: nobody@example.org",
                "Subject: no sender at all",
                "Date: Fri, 11 Dec 2026 07:00:00 +0000",
            ],
            {"FROM": ["nobody"], "TO": ["nobody@example.org"], "SUBJECT": ["at all"]},
        ),
        h(
            "from-only",
            ["From: lonely@example.org"],
            {"FROM": ["lonely"], "TO": ["lonely"], "SUBJECT": ["lonely"]},
        ),
        h(
            "bare-local",
            ["From: postmaster", "To: root, admin@localhost", "Subject: bare parts only"],
            {"FROM": ["postmaster"], "TO": ["root", "admin@localhost"], "SUBJECT": ["bare parts"]},
        ),
        h(
            "quoted-name",
            [
                'From: "quoted \\"nick\\" name" <q@example.org>',
                'To: "a@b.example" <real@c.example>',
                "Subject: quoted names",
            ],
            {
                "FROM": ["nick", "q@example.org"],
                "TO": ["real@c.example", "a@b.example"],
                "SUBJECT": ["quoted"],
            },
        ),
        h(
            "many-fields",
            [
                "From: one@example.org, two@example.org",
                "Sender: secretary@example.org",
                "Reply-To: list@example.org",
                "To: x@example.org, y@example.org",
                "Cc: z@example.org",
                "Bcc: hidden@example.org",
                "Subject: all address fields",
                "In-Reply-To: <a@example.org> <b@example.org>",
                "Message-ID: <many@example.org>",
            ],
            {
                "FROM": ["two@example.org", "one@"],
                "TO": ["y@example.org"],
                "SUBJECT": ["address fields"],
            },
        ),
        h(
            "folded",
            [
                "From: Folded Sender",
                " <folded@example.org>",
                "To: first@example.org,",
                "\tsecond@example.org,",
                " third@example.org",
                "Subject: a subject that is long enough to be folded over",
                " several lines by a careful mail user agent",
                "Date: Sat, 12 Dec",
                " 2026 10:00:00 +0000",
            ],
            {
                "FROM": ["folded@example.org", "Folded Sender"],
                "TO": ["second@example.org"],
                "SUBJECT": ["folded over several", "careful"],
            },
        ),
        h(
            "charsets",
            [
                "From: =?windows-1252?q?Ren=E9e_=93R=94?= <renee@example.fr>",
                "To: =?utf-8?q?=E5=BC=A0=E4=BC=9F?= <zhang@example.cn>",
                "Subject: =?iso-8859-1?q?caf=E9?= =?utf-8?b?IGV0IHRow6k=?=",
            ],
            {
                "FROM": ["Renée", "renee"],
                "TO": ["张伟", "zhang@example.cn"],
                "SUBJECT": ["café et thé", "café"],
            },
        ),
        h(
            "latin1-subject",
            [
                "From: legacy@example.org",
                "To: old@example.org",
                "Subject: " + "Ã\xa0 bient\xf4t, d\xe9j\xe0",
            ],
            {"FROM": ["legacy"], "TO": ["old@"], "SUBJECT": ["bient", "déjà"]},
        ),
        h(
            "empty-group-from",
            ["From: Group Name:;", "To: Team: ;", "Subject: empty groups"],
            {"FROM": ["Group Name"], "TO": ["Team"], "SUBJECT": ["empty groups"]},
        ),
        h(
            "broken-encoded",
            [
                "From: =?utf-8?q?broken <broken@example.org>",
                "To: =?unknown-charset?q?abc?= <u@example.org>",
                "Subject: =?utf-8?b?not base64!?= plain tail",
            ],
            {
                "FROM": ["broken@example.org"],
                "TO": ["u@example.org", "abc"],
                "SUBJECT": ["plain tail"],
            },
        ),
        h(
            "odd-spacing",
            [
                "From:nospace@example.org",
                "To:\t tabbed@example.org",
                "Subject:\t  leading blanks",
                "Date: 13 Dec 2026 10:00 GMT (comment)",
            ],
            {"FROM": ["nospace"], "TO": ["tabbed@example.org"], "SUBJECT": ["leading blanks"]},
        ),
        h(
            "name-encoded-comment",
            [
                "From: =?utf-8?b?w4lxdWlwZQ==?= (Team) <team@example.org>",
                "To: <angle-only@example.org>",
                "Subject: =?UTF-8?Q??=",
                "Message-ID: <x (comment) @example.org>",
            ],
            {
                "FROM": ["Équipe", "team@example.org"],
                "TO": ["angle-only"],
                "SUBJECT": ["angle-only"],
            },
        ),
        h(
            "no-angle-display",
            [
                "From: Just A Name",
                "To: a@example.org; b@example.org",
                "Subject: semicolons instead of commas",
            ],
            {"FROM": ["Just A Name"], "TO": ["b@example.org"], "SUBJECT": ["semicolons"]},
        ),
        h(
            "dup-fields",
            [
                "From: first-from@example.org",
                "From: second-from@example.org",
                "Subject: first subject",
                "Subject: second subject",
                "To: dup@example.org",
            ],
            {
                "FROM": ["second-from", "first-from"],
                "TO": ["dup"],
                "SUBJECT": ["second subject", "first subject"],
            },
        ),
        h(
            "encoded-everywhere",
            [
                "From: =?utf-8?q?Fr=C3=A9d=C3=A9ric?= <fred@example.fr>",
                "Sender: =?iso-8859-1?q?S=E9cr=E9taire?= <sec@example.fr>",
                "Reply-To: =?utf-8?b?UsOpcG9uc2U=?= <reply@example.fr>",
                "To: =?utf-8?q?=C3=89quipe?=: =?utf-8?q?Ana=C3=AFs?= <anais@example.fr>;",
                "Cc: =?utf-8?q?Zo=C3=A9?= <zoe@example.fr>",
                "Subject: =?utf-8?q?r=C3=A9union?=\r\n =?utf-8?q?_de_l=27=C3=A9quipe?=",
                "Date: =?utf-8?q?Mon=2C_7_Dec_2026?= 10:00:00 +0100",
                "Message-ID: <=?utf-8?q?id?=@example.fr>",
                "In-Reply-To: =?utf-8?q?prev?=",
                "Comments: =?utf-8?q?commentaire_g=C3=A9n=C3=A9ral?=",
            ],
            {
                "FROM": ["Frédéric", "fred@"],
                "TO": ["Anaïs", "Équipe", "anais@example.fr"],
                "SUBJECT": ["réunion de l'équipe", "réunion"],
            },
        ),
    ]


def _mp(
    ctype: str, parts: list[str], boundary: str, pre: str = "", epi: str = "", close: bool = True
) -> tuple[list[str], str]:
    """A multipart's Content-Type line and body from finished parts."""
    body = pre
    for p in parts:
        body += f"--{boundary}{CRLF}{p}{CRLF}"
    if close:
        body += f"--{boundary}--{CRLF}{epi}"
    return [ctype], body


def _part(header: list[str], body: str) -> str:
    return CRLF.join(header) + CRLF + CRLF + body


_TXT = "Plain words: the quick brown fox jumps over the lazy dog."
_HTML = "PGh0bWw+PGJvZHk+PHA+SFRNTCBrYW5nYXJvbyBib2R5PC9wPjwvYm9keT48L2h0bWw+"  # kangaroo


def _bodies() -> list[_Body]:
    b: list[_Body] = []
    add = lambda n, ch, body, nd: b.append(_Body(n, ch, body, nd))  # noqa: E731
    add(
        "text",
        ["Content-Type: text/plain; charset=us-ascii"],
        f"{_TXT}{CRLF}Walrus line.{CRLF}",
        ["walrus", "quick brown"],
    )
    add("no-mime", [], f"No MIME headers at all, ocelot.{CRLF}", ["ocelot"])
    add(
        "utf8-8bit",
        [
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ],
        _lat(f"Übergrößenträger und Straßenbahn, lémurien.{CRLF}"),
        ["lémurien", "Straßenbahn"],
    )
    add(
        "qp-latin1",
        [
            "Content-Type: text/plain; charset=iso-8859-1",
            "Content-Transfer-Encoding: quoted-printable",
        ],
        f"Caf=E9 cr=E8me with a soft=\r\n break, pangolin.{CRLF}",
        ["crème", "softbreak", "pangolin"],
    )
    add(
        "html-b64",
        ["Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: base64"],
        _HTML + CRLF,
        ["kangaroo"],
    )
    ct, body = _mp(
        'Content-Type: multipart/mixed; boundary="foo\r\n bar"',
        [
            _part(["Content-Type: text/plain"], "first part, heron"),
            _part(["Content-Type: text/plain; charset=utf-8"], "second part, ibis"),
        ],
        "foo bar",
    )
    add("folded-boundary", ["MIME-Version: 1.0", *ct], body, ["heron", "ibis"])
    ct, body = _mp(
        'Content-Type: multipart/mixed;\r\n boundary*0="2231-abc";\r\n boundary*1="-def"',
        [
            _part(["Content-Type: text/plain"], "continued boundary, jackal"),
            _part(
                [
                    'Content-Type: application/pdf; name="r.pdf"',
                    "Content-Transfer-Encoding: base64",
                ],
                "JVBERi0xLjQK",
            ),
        ],
        "2231-abc-def",
    )
    add("rfc2231-boundary", ["MIME-Version: 1.0", *ct], body, ["jackal"])
    ct, body = _mp(
        "Content-Type: multipart/mixed; boundary=att",
        [
            _part(["Content-Type: text/plain; charset=utf-8"], "see attachment, koala"),
            _part(
                [
                    "Content-Type: application/pdf;",
                    " name*0*=utf-8''%E2%82%AC%20rates%20;",
                    " name*1*=2026.pdf",
                    "Content-Disposition: attachment;",
                    " filename*=utf-8''%E2%82%AC%20rates%202026.pdf",
                    "Content-Transfer-Encoding: base64",
                ],
                "JVBERi0xLjUK",
            ),
            _part(
                [
                    "Content-Type: text/plain; name*=iso-8859-1'fr'r%E9sum%E9.txt",
                    'Content-Disposition: inline; filename*0="long-";',
                    ' filename*1="name.txt"; size=42',
                ],
                "llama inline",
            ),
        ],
        "att",
    )
    add("rfc2231-names", ["MIME-Version: 1.0", *ct], body, ["koala", "llama"])
    ct, body = _mp(
        'Content-Type: multipart/mixed; boundary="fold-param"',
        [
            _part(
                ['Content-Type: text/plain;\r\n charset=\r\n "utf-8";\r\n format=flowed'],
                _lat("folded charset, mündung marmot"),
            ),
            _part(
                [
                    'Content-Type: application/octet-stream;\r\n name="a very',
                    ' long file name.bin"',
                    "Content-Disposition: attachment;",
                    '\tfilename="a very long',
                    ' file name.bin"',
                ],
                "binary-ish",
            ),
        ],
        "fold-param",
    )
    add("folded-params", [*ct], body, ["marmot", "mündung"])
    inner, ibody = _mp(
        'Content-Type: multipart/alternative; boundary="alt-1"',
        [
            _part(["Content-Type: text/plain; charset=us-ascii"], "narwhal text"),
            _part(["Content-Type: text/html; charset=us-ascii"], "<p>narwhal html</p>"),
        ],
        "alt-1",
    )
    ct, body = _mp(
        'Content-Type: multipart/mixed; boundary="mix-1"',
        [
            _part(inner, ibody),
            _part(
                [
                    "Content-Type: image/png",
                    "Content-ID: <img1@example.org>",
                    "Content-Disposition: inline",
                    "Content-Transfer-Encoding: base64",
                ],
                "iVBORw0KGgo=",
            ),
        ],
        "mix-1",
    )
    add("mixed-alt", ["MIME-Version: 1.0", *ct], body, ["narwhal"])
    emb_ct, emb_body = _mp(
        'Content-Type: multipart/mixed; boundary="inner-b"',
        [
            _part(["Content-Type: text/plain"], "embedded okapi"),
            _part(["Content-Type: text/csv; name=data.csv"], "a,b\r\n1,2"),
        ],
        "inner-b",
    )
    embedded = _part(
        [
            "From: Inner <inner@example.net>",
            "To: x@example.net",
            "Subject: =?utf-8?q?inner_=C3=A9?=",
            "Date: Sun, 1 Nov 2026 10:00:00 +0000",
            "MIME-Version: 1.0",
            *emb_ct,
        ],
        emb_body,
    )
    ct, body = _mp(
        "Content-Type: multipart/mixed; boundary=outer",
        [
            _part(["Content-Type: text/plain"], "forwarding, see below: parrot"),
            _part(
                [
                    "Content-Type: message/rfc822",
                    "Content-Disposition: attachment; filename=fwd.eml",
                ],
                embedded,
            ),
        ],
        "outer",
    )
    add("forward-rfc822", ["MIME-Version: 1.0", *ct], body, ["okapi", "parrot", "inner"])
    add(
        "rfc822-no-headers",
        ["Content-Type: message/rfc822"],
        CRLF + "only a body, quokka" + CRLF,
        ["quokka"],
    )
    deep = _part(["Subject: deepest", "From: deep@example.org"], "raccoon at the bottom")
    mid = _part(["Subject: middle", "Content-Type: message/rfc822"], deep)
    add("rfc822-in-rfc822", ["Content-Type: message/rfc822"], mid, ["raccoon", "deepest"])
    ct, body = _mp(
        "Content-Type: multipart/mixed; boundary=open",
        [
            _part(["Content-Type: text/plain"], "first, salamander"),
            _part(["Content-Type: text/plain"], "never closed, tapir"),
        ],
        "open",
        close=False,
    )
    add("no-close", [*ct], body, ["tapir", "salamander"])
    ct, body = _mp(
        "Content-Type: multipart/mixed; boundary=pe",
        [_part(["Content-Type: text/plain"], "between, urchin")],
        "pe",
        pre="This is a preamble, vulture." + CRLF + CRLF,
        epi="And an epilogue, wombat." + CRLF,
    )
    add("preamble-epilogue", [*ct], body, ["urchin", "vulture", "wombat"])
    ct, body = _mp(
        "Content-Type: multipart/mixed; boundary=bnd",
        [
            _part(
                ["Content-Type: text/plain"],
                "a line --bnd in the middle\r\n--bndx looks alike\r\n--bnd-- not at start\r\nxerus",
            ),
            _part(["Content-Type: text/plain"], "yak after"),
        ],
        "bnd",
    )
    add("boundary-inside", [*ct], body, ["xerus", "yak"])
    add(
        "multipart-no-boundary",
        ["Content-Type: multipart/mixed"],
        f"--x{CRLF}Content-Type: text/plain{CRLF}{CRLF}zebu{CRLF}--x--{CRLF}",
        ["zebu"],
    )
    add(
        "nul-text",
        ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 8bit"],
        f"before\x00after NUL, albatross{CRLF}two\x00\x00nuls{CRLF}",
        ["albatross"],
    )
    ct, body = _mp(
        "Content-Type: multipart/mixed; boundary=nulpart",
        [
            _part(["Content-Type: text/plain"], "clean part, bison"),
            _part(
                ["Content-Type: application/octet-stream", "Content-Transfer-Encoding: binary"],
                "\x00\x01\x02\xff\x00end",
            ),
        ],
        "nulpart",
    )
    add("nul-attachment", [*ct], body, ["bison"])
    add(
        "long-lines",
        ["Content-Type: text/plain"],
        "caribou " + "x" * 1200 + CRLF + "short" + CRLF + "y" * 3000 + CRLF,
        ["caribou"],
    )
    add(
        "digest",
        ['Content-Type: multipart/digest; boundary="dg"'],
        _mp(
            "",
            [
                # A part without MIME header: the embedded message follows the blank.
                CRLF + _part(["Subject: digest one", "From: d1@example.org"], "dingo one"),
                # Here the part's header is taken for the message's: all header.
                _part(["Subject: digest two"], "elk as the embedded message"),
                _part(["Content-Type: text/plain"], "typed part, emu"),
            ],
            "dg",
        )[1],
        ["dingo", "emu", "elk"],
    )
    add(
        "type-comments",
        [
            "Content-Type: text/plain (plain text); charset=us-ascii (ascii)",
            "Content-Transfer-Encoding: 7bit (seven)",
        ],
        "ferret with comments" + CRLF,
        ["ferret"],
    )
    add(
        "uppercase",
        [
            "Content-Type: TEXT/PLAIN; CHARSET=UTF-8; Format=Flowed",
            "Content-Transfer-Encoding: QUOTED-PRINTABLE",
        ],
        "gecko =C3=BC upper" + CRLF,
        ["gecko", "ü upper"],
    )
    add(
        "unknown-cte",
        ["Content-Type: text/plain", "Content-Transfer-Encoding: x-uuencode"],
        "begin 644 f.txt\r\n#:&D*\r\n`\r\nend\r\nhamster" + CRLF,
        ["hamster"],
    )
    add("empty-body", ["Content-Type: text/plain"], "", ["nothing"])
    add(
        "all-ext-fields",
        [
            "Content-Type: text/plain; charset=utf-8; delsp=yes",
            "Content-ID: <cid.1@example.org>",
            "Content-Description: =?utf-8?q?descri=C3=A7=C3=A3o?=",
            "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==",
            'Content-Disposition: inline; filename="x.txt"; '
            'creation-date="Wed, 12 Feb 1997 16:29:51 -0500"',
            "Content-Language: en, de-CH",
            "Content-Location: http://e.org/x",
        ],
        "iguana extension fields" + CRLF,
        ["iguana"],
    )
    ct, body = _mp(
        "Content-Type: multipart/mixed; boundary=empties",
        ["", CRLF + "no header, jaguar", _part(["Content-Type: text/plain"], "")],
        "empties",
    )
    add("empty-parts", [*ct], body, ["jaguar"])
    ct, body = _mp(
        'Content-Type: multipart/related; boundary="=_Part_0_12.34"; type="text/html"',
        [_part(["Content-Type: text/html"], "<b>kiwi</b>")],
        "=_Part_0_12.34",
    )
    add("special-boundary", [*ct], body, ["kiwi"])
    lvl = _part(["Content-Type: text/plain"], "lynx deep down")
    for k in range(5):
        ct, body = _mp(f'Content-Type: multipart/mixed; boundary="lvl{k}"', [lvl], f"lvl{k}")
        lvl = _part(ct, body)
    add("deep-nesting", [], lvl, ["lynx"])
    add("no-final-eol", ["Content-Type: text/plain"], "mongoose without end of line", ["mongoose"])
    add(
        "b64-rfc822",
        ["Content-Type: message/rfc822", "Content-Transfer-Encoding: base64"],
        "U3ViamVjdDogaGlkZGVuDQoNCm5ld3Q=" + CRLF,
        ["newt"],
    )
    add(
        "params-2231-lang",
        [
            "Content-Type: text/plain; charset=us-ascii;",
            " title*=us-ascii'en'This%20is%20%2A%2A%2Afun%2A%2A%2A",
        ],
        "orca titled" + CRLF,
        ["orca"],
    )
    add("header-only", [], None, ["nothing"])
    ct, body = _mp(
        "Content-Type: multipart/mixed; boundary=names",
        [
            _part(
                [
                    'Content-Type: application/pdf; name="=?utf-8?q?d=C3=A9j=C3=A0.pdf?="',
                    'Content-Disposition: attachment; filename="=?utf-8?q?d=C3=A9j=C3=A0.pdf?="',
                ],
                "JVBERi0K",
            ),
            _part(
                [
                    _lat('Content-Type: text/plain; charset=utf-8; name="résumé.txt"'),
                    _lat('Content-Disposition: inline; filename="résumé.txt"'),
                    "Content-Description: =?utf-8?q?r=C3=A9sum=C3=A9?=",
                ],
                "puffin inside",
            ),
        ],
        "names",
    )
    add("encoded-filenames", ["MIME-Version: 1.0", *ct], body, ["puffin"])
    add("no-subtype", ["Content-Type: text"], "quail without subtype" + CRLF, ["quail"])
    add("garbage-type", ["Content-Type: ;;; =broken"], "rabbit garbage type" + CRLF, ["rabbit"])
    ct, body = _mp(
        'Content-Type: multipart/report; report-type=delivery-status; boundary="rep"',
        [
            _part(["Content-Type: text/plain"], "delivery failed, seal"),
            _part(
                ["Content-Type: message/delivery-status"],
                "Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; x@y.z\r\n"
                "Action: failed\r\nStatus: 5.1.1",
            ),
            _part(
                ["Content-Type: text/rfc822-headers"],
                "From: orig@example.org\r\nSubject: original",
            ),
        ],
        "rep",
    )
    add("bounce-report", [*ct], body, ["seal", "Final-Recipient"])
    ct, body = _mp(
        'Content-Type: multipart/signed; protocol="application/pgp-signature";\r\n'
        '\tmicalg=pgp-sha256; boundary="sig"',
        [
            _part(["Content-Type: text/plain; charset=us-ascii"], "signed trout"),
            _part(
                ["Content-Type: application/pgp-signature; name=signature.asc"],
                "-----BEGIN PGP SIGNATURE-----\r\niQ==\r\n-----END PGP SIGNATURE-----",
            ),
        ],
        "sig",
    )
    add("signed", ["MIME-Version: 1.0", *ct], body, ["trout"])
    ct, body = _mp(
        "Content-Type: multipart/alternative; boundary=tab-fold",
        [_part(["Content-Type: text/plain;\r\n\tcharset=utf-8;\r\n\tformat=flowed"], "urial")],
        "tab-fold",
    )
    add("crlf-tab-folds", [*ct], body, ["urial"])
    return b


def _render(head: _Head, body: _Body, i: int) -> bytes:
    lines = [*head.lines, f"X-Corpus-Index: {i}", *body.content_header]
    text = CRLF.join(lines) + CRLF
    if body.body is not None:
        text += CRLF + body.body
    return text.encode("latin-1")


def corpus(size: int = 231) -> list[Sample]:
    """``size`` messages; the default covers every header variant with every tenth
    body variant and every body variant with at least six header variants."""
    heads, bodies = _heads(), _bodies()
    out: list[Sample] = []
    for i in range(size):
        head = heads[i % len(heads)]
        body = bodies[(i * 7 + i // len(heads)) % len(bodies)]
        needles = {k: list(v) for k, v in head.needles.items()}
        needles["BODY"] = list(body.needles)
        needles["TEXT"] = [*body.needles, *head.needles["SUBJECT"][:1]]
        out.append(Sample(f"m{i:03d}-{head.name}-{body.name}", _render(head, body, i), needles))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: mime_corpus.py OUTDIR", file=sys.stderr)
        return 2
    outdir = Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    samples = corpus()
    for s in samples:
        (outdir / f"{s.name}.eml").write_bytes(s.raw)
    print(f"{len(samples)} messages in {outdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
