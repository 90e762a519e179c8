"""A fast reading of the common MAIL FROM / RCPT TO path, ``<local@domain.tld>``.

aiosmtpd reads every path with the stdlib's RFC 5322 header parser
(``get_angle_addr``), and defines a ``typing.Protocol`` class on every call. In an
LMTP burst that was a fifth of the server's Python time per delivery (py-spy,
2026-12-03). Nearly every path an MTA sends is a plain dot-atom address in angle
brackets, which one regular expression reads with the same result; anything else
(the null path ``<>``, quoted local parts, comments, source routes, domain
literals, non-ASCII) is left to aiosmtpd's parser, so the fast path never decides a
case the full parser would decide differently.
"""

from __future__ import annotations

import re

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9-]+"
_SIMPLE = re.compile(
    rf"<((?:{_ATEXT}(?:\.{_ATEXT})*)@{_LABEL}(?:\.{_LABEL})*)>(?:[ \t]+(?=[^ \t(])|$)"
)


def simple_path(arg: str) -> tuple[str, str] | None:
    """``(address, parameters)`` for a plain ``<local@domain>`` path, as aiosmtpd's
    ``_getaddr`` would return them; None when the path needs the full parser."""
    m = _SIMPLE.match(arg)
    if m is None:
        return None
    return m.group(1), arg[m.end() :]
