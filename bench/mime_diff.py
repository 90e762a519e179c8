"""Differential MIME check: the corpus of ``mime_corpus.py`` delivered over LMTP to a
private Dovecot and to pushmail, then compared field by field over IMAP.

Per message: ENVELOPE, BODYSTRUCTURE, RFC822.SIZE (less the trace header each server
prepends at delivery), and for every part named by either server's BODYSTRUCTURE:
BODY[n], BODY[n.MIME], BINARY.SIZE[n], and BODY[n.HEADER]/BODY[n.TEXT] for
message/rfc822 parts; then SEARCH FROM/TO/SUBJECT/BODY/TEXT for every needle of the
corpus, compared as sets of corpus messages.

``python bench/mime_diff.py`` prints one JSON line: messages, compared fields,
differences by kind, and each difference as ``[message, field]``. The e2e test
(tests/e2e/test_mime_dovecot_diff.py) uses the same functions and checks the
differences against the "Accepted differences from Dovecot" table of
docs/extensions.md.
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mime_corpus import Sample, corpus

USER, PASSWORD = "alice@example.org", "alice-secret"
Value = bytes | int | None | list["Value"]
_ATOM = re.compile(rb"[^\s()\"{}]+")
_LITERAL = re.compile(rb"~?\{(\d+)\+?\}\r\n$")


# --------------------------------------------------------------------------- client


class Imap:
    """A bare IMAP client: whole responses, literals inline, no interpretation."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.tag = 0
        self._line()  # greeting

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _response(self) -> bytes:
        out = self._line()
        while m := _LITERAL.search(out):
            out += self._exact(int(m.group(1)))
            out += self._line()
        return out

    def run(self, command: bytes) -> tuple[list[bytes], bytes]:
        """Send ``command`` (LITERAL+ literals allowed); untagged responses and the
        tagged status (``OK``/``NO``/``BAD`` and its text)."""
        self.tag += 1
        tag = b"t%d" % self.tag
        self.sock.sendall(tag + b" " + command + b"\r\n")
        untagged: list[bytes] = []
        while True:
            resp = self._response()
            if resp.startswith(tag + b" "):
                return untagged, resp[len(tag) + 1 :].rstrip(b"\r\n")
            untagged.append(resp)

    def ok(self, command: bytes) -> list[bytes]:
        untagged, status = self.run(command)
        if not status.startswith(b"OK"):
            raise RuntimeError(f"{command[:60]!r}: {status!r}")
        return untagged

    def close(self) -> None:
        try:
            self.run(b"LOGOUT")
        finally:
            self.sock.close()


def read_value(data: bytes, pos: int) -> tuple[Value, int]:
    """One IMAP value at ``pos``: list, quoted, literal (also ``~{n}``), NIL, number,
    atom (``BODY[1.MIME]`` and friends are atoms here)."""
    while data[pos : pos + 1] == b" ":
        pos += 1
    ch = data[pos : pos + 1]
    if ch == b"(":
        items: list[Value] = []
        pos += 1
        while True:
            while data[pos : pos + 1] == b" ":
                pos += 1
            if data[pos : pos + 1] == b")":
                return items, pos + 1
            if pos >= len(data):
                raise ValueError("unclosed list")
            item, pos = read_value(data, pos)
            items.append(item)
    if ch == b'"':
        out = bytearray()
        pos += 1
        while data[pos : pos + 1] != b'"':
            if pos >= len(data):
                raise ValueError("unclosed string")
            if data[pos : pos + 1] == b"\\":
                pos += 1
            out += data[pos : pos + 1]
            pos += 1
        return bytes(out), pos + 1
    if ch in (b"{", b"~"):
        end = data.index(b"}\r\n", pos)
        n = int(data[data.index(b"{", pos) + 1 : end].rstrip(b"+"))
        start = end + 3
        return data[start : start + n], start + n
    m = _ATOM.match(data, pos)
    if not m:
        raise ValueError(f"unexpected {data[pos : pos + 20]!r} at {pos}")
    word = m.group()
    if word == b"NIL":
        return None, m.end()
    if word.isdigit():
        return int(word), m.end()
    return word, m.end()


def fetch_items(untagged: list[bytes]) -> dict[int, dict[bytes, Value]]:
    """``* n FETCH (...)`` responses as {seq: {ITEM: value}} (merged per message)."""
    out: dict[int, dict[bytes, Value]] = {}
    for resp in untagged:
        m = re.match(rb"\* (\d+) FETCH ", resp)
        if not m:
            continue
        value, _ = read_value(resp, m.end())
        assert isinstance(value, list)
        items = out.setdefault(int(m.group(1)), {})
        for k in range(0, len(value) - 1, 2):
            key = value[k]
            assert isinstance(key, bytes)
            items[key.upper().replace(b".PEEK", b"")] = value[k + 1]
    return out


# --------------------------------------------------------------------------- delivery


def deliver(lmtp_port: int, imap: Imap, samples: list[Sample]) -> list[str]:
    """LMTP each sample in order; one the server refuses goes in by APPEND instead.
    Returns the names of the samples that needed APPEND."""
    appended: list[str] = []
    with smtplib.LMTP("127.0.0.1", lmtp_port) as lmtp:
        for s in samples:
            try:
                lmtp.sendmail("sender@example.net", [USER], s.raw)
            except smtplib.SMTPException:
                lmtp.rset()
                appended.append(s.name)
                lit = b"~{%d+}\r\n" % len(s.raw) if b"\x00" in s.raw else b"{%d+}\r\n" % len(s.raw)
                imap.ok(b"APPEND INBOX " + lit + s.raw)
    return appended


# --------------------------------------------------------------------------- collect


def _multipart_children(bs: list[Value]) -> list[list[Value]]:
    kids: list[list[Value]] = []
    for x in bs:
        if not isinstance(x, list):
            break
        kids.append(x)
    return kids


def paths_of(bs: Value, prefix: str = "") -> list[tuple[str, bool]]:
    """Section numbers of every part (RFC 3501 §6.4.5 numbering)."""
    out: list[tuple[str, bool]] = []
    if not isinstance(bs, list) or not bs:
        return out
    if isinstance(bs[0], list):
        for k, child in enumerate(_multipart_children(bs)):
            path = f"{prefix}{k + 1}"
            out.append((path, False))
            if isinstance(child[0], list):
                out.extend(paths_of(child, path + "."))
            else:
                out.extend(_message_parts(child, path))
        return out
    path = prefix + "1"
    out.append((path, False))
    out.extend(_message_parts(bs, path))
    return out


def _message_parts(bs: list[Value], path: str) -> list[tuple[str, bool]]:
    t, s = bs[0], bs[1]
    is_bytes = isinstance(t, bytes) and isinstance(s, bytes)
    if is_bytes and len(bs) > 8 and (t.lower(), s.lower()) == (b"message", b"rfc822"):  # type: ignore[union-attr]
        return [(path, True), *paths_of(bs[8], path + ".")]
    return []


def sent_bytes(raw: bytes) -> bytes:
    """The message as the LMTP client puts it on the wire: a last line always ends in
    CRLF (smtplib adds one, as every SMTP client must before the final dot)."""
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def _trace(full: Value, raw: bytes) -> bytes | None:
    """The octets the server prepended at delivery (its trace header fields), found
    as what comes before the delivered message; NUL may come back as 0x80 (Dovecot)."""
    if not isinstance(full, bytes):
        return None
    for sent in (sent_bytes(raw), raw):
        for form in (sent, sent.replace(b"\0", b"\x80")):
            if full.endswith(form):
                return full[: len(full) - len(form)]
    return None


def collect(imap: Imap, samples: list[Sample]) -> dict[str, dict[str, object]]:
    """Every compared field of every sample, keyed by sample name and field name."""
    imap.ok(b"SELECT INBOX")
    base = fetch_items(imap.ok(b"FETCH 1:* (ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY.PEEK[])"))
    out: dict[str, dict[str, object]] = {}
    for seq, s in enumerate(samples, 1):
        item = base[seq]
        trace = _trace(item[b"BODY[]"], s.raw)
        size = item[b"RFC822.SIZE"]
        fields: dict[str, object] = {
            "ENVELOPE": item[b"ENVELOPE"],
            "BODYSTRUCTURE": item[b"BODYSTRUCTURE"],
            "RFC822.SIZE": size - len(trace) if isinstance(size, int) and trace else size,
            "trace": trace,
        }
        out[s.name] = fields
    return out


def collect_parts(
    imap: Imap,
    samples: list[Sample],
    paths: dict[str, list[tuple[str, bool]]],
    into: dict[str, dict[str, object]],
) -> None:
    """BODY[n], BODY[n.MIME], BINARY.SIZE[n] (and n.HEADER/n.TEXT) per part."""
    for seq, s in enumerate(samples, 1):
        fields = into[s.name]
        body_items: list[str] = []
        for path, is_msg in paths[s.name]:
            if is_msg:
                body_items += [f"BODY[{path}.HEADER]", f"BODY[{path}.TEXT]"]
            else:
                body_items += [f"BODY[{path}]", f"BODY[{path}.MIME]"]
        if body_items:
            peek = " ".join(i.replace("BODY[", "BODY.PEEK[") for i in body_items)
            untagged, status = imap.run(b"FETCH %d (%s)" % (seq, peek.encode()))
            got = fetch_items(untagged).get(seq, {})
            trace = fields["trace"]
            for name in body_items:
                value = got.get(name.encode(), "missing") if status.startswith(b"OK") else "NO"
                # The header of a one-part message (BODY[1.MIME]) starts with the
                # trace fields each server adds in its own words: left out.
                if isinstance(value, bytes) and isinstance(trace, bytes) and trace:
                    value = value.removeprefix(trace)
                fields[name] = value
        sizes = [f"BINARY.SIZE[{path}]" for path, is_msg in paths[s.name] if not is_msg]
        if sizes:
            _binary_sizes(imap, seq, sizes, fields)


def _binary_sizes(imap: Imap, seq: int, names: list[str], into: dict[str, object]) -> None:
    """All BINARY.SIZE items in one FETCH; one by one when that is refused (a NO
    for one part, e.g. UNKNOWN-CTE, must not hide the others)."""
    batches = [names] if len(names) > 1 else []
    for batch in [*batches, *([n] for n in names)]:
        untagged, status = imap.run(b"FETCH %d (%s)" % (seq, " ".join(batch).encode()))
        got = fetch_items(untagged).get(seq, {})
        for name in batch:
            into[name] = got.get(name.encode(), "missing") if status.startswith(b"OK") else "NO"
        if status.startswith(b"OK") and len(batch) > 1:
            return


def _astring(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"{%d+}\r\n" % len(data) + data


def search_keys(samples: list[Sample]) -> list[tuple[str, str]]:
    keys = {(k, v) for s in samples for k, vs in s.needles.items() for v in vs}
    return sorted(keys)


def collect_searches(imap: Imap, samples: list[Sample]) -> dict[str, set[str]]:
    """``SEARCH CHARSET UTF-8 KEY needle`` → the names of the matching samples."""
    names = {seq: s.name for seq, s in enumerate(samples, 1)}
    out: dict[str, set[str]] = {}
    for key, needle in search_keys(samples):
        untagged = imap.ok(b"SEARCH CHARSET UTF-8 " + key.encode() + b" " + _astring(needle))
        hits: set[str] = set()
        for resp in untagged:
            if resp.startswith(b"* SEARCH"):
                hits |= {names[int(n)] for n in resp.split()[2:]}
        out[f"SEARCH {key} {needle}"] = hits
    return out


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True, slots=True)
class Difference:
    message: str  # sample name, or "*" for a SEARCH
    field: str  # e.g. "BODYSTRUCTURE", "BODY[2.MIME]", "SEARCH FROM x"
    dovecot: str
    pushmail: str


def _show(value: object) -> str:
    if isinstance(value, set):
        return " ".join(sorted(n.split("-", 1)[0] for n in value)) or "(none)"
    text = repr(value)
    return text if len(text) <= 3000 else text[:2997] + "..."


def run_both(
    dovecot_ports: tuple[int, int], pushmail_ports: tuple[int, int], samples: list[Sample]
) -> tuple[list[Difference], int, dict[str, list[str]]]:
    """Deliver, collect, compare. Returns (differences, fields compared, appended)."""
    results: dict[str, dict[str, dict[str, object]]] = {}
    searches: dict[str, dict[str, set[str]]] = {}
    clients: dict[str, Imap] = {}
    appended: dict[str, list[str]] = {}
    for side, (imap_port, lmtp_port) in (("dovecot", dovecot_ports), ("pushmail", pushmail_ports)):
        imap = Imap(imap_port)
        imap.ok(b"LOGIN " + USER.encode() + b" " + PASSWORD.encode())
        appended[side] = deliver(lmtp_port, imap, samples)
        results[side] = collect(imap, samples)
        clients[side] = imap
    paths: dict[str, list[tuple[str, bool]]] = {}
    for s in samples:
        union: dict[str, bool] = {}
        for side in results:
            for path, is_msg in paths_of(results[side][s.name]["BODYSTRUCTURE"]):  # type: ignore[arg-type]
                union[path] = union.get(path, False) or is_msg
        paths[s.name] = sorted(union.items(), key=lambda p: [int(x) for x in p[0].split(".")])
    for side, imap in clients.items():
        collect_parts(imap, samples, paths, results[side])
        searches[side] = collect_searches(imap, samples)
        imap.close()
    diffs: list[Difference] = []
    compared = 0
    for s in samples:
        d, p = results["dovecot"][s.name], results["pushmail"][s.name]
        for name in sorted((d.keys() | p.keys()) - {"trace"}):
            compared += 1
            if d.get(name, "missing") != p.get(name, "missing"):
                diffs.append(
                    Difference(
                        s.name, name, _show(d.get(name, "missing")), _show(p.get(name, "missing"))
                    )
                )
    for key in searches["dovecot"]:
        compared += 1
        d_hits, p_hits = searches["dovecot"][key], searches["pushmail"][key]
        if d_hits != p_hits:
            diffs.append(Difference("*", key, _show(d_hits), _show(p_hits)))
    return diffs, compared, appended


def kind_of(field: str) -> str:
    """``BODY[2.MIME]`` → ``BODY[n.MIME]``; ``SEARCH FROM x`` → ``SEARCH FROM``."""
    if field.startswith("SEARCH "):
        return " ".join(field.split(" ")[:2])
    return re.sub(r"(?<=\[)[\d.]*\d", "n", field)


# --------------------------------------------------------------------------- accepted


DOC = Path(__file__).resolve().parents[1] / "docs" / "extensions.md"
_TABLE = "### Accepted differences from Dovecot"


@dataclass(frozen=True, slots=True)
class Accepted:
    """One row of the table: message and field patterns (``*`` is the only wildcard)."""

    messages: tuple[str, ...]
    fields: tuple[str, ...]

    def covers(self, d: Difference) -> bool:
        return any(_glob(m, d.message) for m in self.messages) and any(
            _glob(f, d.field) for f in self.fields
        )


def _glob(pattern: str, text: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), text) is not None


def accepted_rows(doc: Path = DOC, table: str = _TABLE) -> list[Accepted]:
    """The rows of the "Accepted differences from Dovecot" table (or ``table``) of ``doc``."""
    section = doc.read_text().split(table + "\n", 1)[1].split("\n#", 1)[0]
    rows: list[Accepted] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append(Accepted(*(tuple(re.findall(r"`([^`]+)`", c)) for c in cells[:2])))
    return rows


def judge(diffs: list[Difference], rows: list[Accepted]) -> tuple[list[Difference], list[Accepted]]:
    """(differences no row accepts, rows that accept no difference any more)."""
    unexplained = [d for d in diffs if not any(r.covers(d) for r in rows)]
    stale = [r for r in rows if not any(r.covers(d) for d in diffs)]
    return unexplained, stale


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import dovecot
    from pushmail_server import PushmailInstance

    samples = corpus()
    t0 = time.monotonic()
    # Dovecot's mail processes run as another user: its workdir must be reachable
    # (DovecotInstance makes it 0755), so it is a temporary directory of its own.
    with (
        tempfile.TemporaryDirectory(prefix="pm-mimediff-dovecot-") as dwork,
        tempfile.TemporaryDirectory(prefix="pm-mimediff-") as pwork,
    ):
        dove = dovecot.DovecotInstance(Path(dwork), [(USER, PASSWORD)], sessions=4)
        push = PushmailInstance(Path(pwork), [(USER, PASSWORD)])
        dove.start()
        try:
            push.add_users()
            push.start()
            try:
                diffs, compared, appended = run_both(
                    (dove.imap_port, dove.lmtp_port), (push.imap_port, push.lmtp_port), samples
                )
            finally:
                push.stop()
        finally:
            dove.stop()
    kinds = Counter(kind_of(d.field) for d in diffs)
    unexplained, stale = judge(diffs, accepted_rows())
    print(
        json.dumps(
            {
                "messages": len(samples),
                "accepted_rows": len(accepted_rows()),
                "unexplained": len(unexplained),
                "stale_rows": [[r.messages, r.fields] for r in stale],
                "compared_fields": compared,
                "differences": len(diffs),
                "by_kind": dict(sorted(kinds.items())),
                "appended_instead_of_lmtp": appended,
                "seconds": round(time.monotonic() - t0, 1),
                "unexplained_list": [
                    [d.message, d.field, d.dovecot, d.pushmail] for d in unexplained
                ],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
