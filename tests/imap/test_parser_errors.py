"""Invalid commands: each must raise ProtocolError, and nothing may raise anything else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushmail.imap.command_table import COMMANDS, parse_command
from pushmail.imap.errors import ProtocolError
from pushmail.imap.parse_lexer import Reader

INVALID: list[bytes] = [
    b"",
    b"\r\n",
    b"a NOOP",  # no CRLF
    b"a NOOP\r\nb NOOP\r\n",  # leftover bytes
    b"a NOOP \r\n",  # trailing space
    b"a  NOOP\r\n",  # two spaces
    b"+a NOOP\r\n",  # "+" in tag
    b"* NOOP\r\n",
    b"a\r\n",
    b"a FROBNICATE\r\n",
    b"a UID NOOP\r\n",
    b"a NOOP extra\r\n",
    # AUTHENTICATE
    b"a AUTHENTICATE\r\n",
    b"a AUTHENTICATE PLAIN A===\r\n",
    b"a AUTHENTICATE PLAIN AGJ\r\n",  # bad padding
    # LOGIN
    b"a LOGIN bob\r\n",
    b'a LOGIN bob "unterminated\r\n',
    b'a LOGIN bob "bad \\escape"\r\n',
    b'a LOGIN "a\rb" x\r\n',  # CR inside a quoted string
    b'a LOGIN "a\x00b" x\r\n',
    b"a LOGIN bob {5}\r\nabc\r\n",  # literal shorter than announced
    b"a LOGIN bob {3}\r\na\x00c\r\n",  # NUL in a literal
    b"a LOGIN bob {3]\r\nabc\r\n",
    b"a LOGIN bob \xff\xfe\r\n",
    b'a LOGIN "\xff" x\r\n',  # not UTF-8
    # SELECT
    b"a SELECT\r\n",
    b"a SELECT x (FOO)\r\n",
    b"a SELECT x ()\r\n",
    b"a SELECT x (CONDSTORE CONDSTORE)\r\n",
    b"a SELECT x (QRESYNC (0 1))\r\n",  # uidvalidity is nz-number
    b"a SELECT x (QRESYNC (1 0))\r\n",  # modseq must be positive
    b"a SELECT x (QRESYNC (1 1 1:2 3:4))\r\n",
    # CREATE / RENAME / LIST / STATUS
    b"a CREATE x (USE (Sent))\r\n",
    b"a CREATE x (FOO)\r\n",
    b"a RENAME x\r\n",
    b"a LIST x\r\n",
    b'a LIST (FOO) "" %\r\n',
    b'a LIST (RECURSIVEMATCH) "" %\r\n',
    b'a LIST "" % RETURN (FOO)\r\n',
    b'a LIST "" % RETURN (STATUS ())\r\n',
    b'a LIST "" % FOO\r\n',
    b'a LIST "" ()\r\n',
    b"a LSUB x\r\n",
    b"a STATUS x ()\r\n",
    b"a STATUS x (MESSAGES FOO)\r\n",
    b"a STATUS x MESSAGES\r\n",
    # APPEND
    b"a APPEND x\r\n",
    b'a APPEND x "1-Feb-1994 21:52:25 -0800" {1}\r\nx\r\n',  # day not fixed width
    b'a APPEND x "31-Feb-1994 21:52:25 -0800" {1}\r\nx\r\n',
    b'a APPEND x "01-Feb-1994 25:52:25 -0800" {1}\r\nx\r\n',
    b'a APPEND x "01-Feb-1994 21:52:25 -9900" {1}\r\nx\r\n',
    b'a APPEND x "01-Foo-1994 21:52:25 -0800" {1}\r\nx\r\n',
    b"a APPEND x (\\Seen {1}\r\nx\r\n",
    b"a APPEND x hello\r\n",
    # FETCH
    b"a FETCH\r\n",
    b"a FETCH 1\r\n",
    b"a FETCH 0 FLAGS\r\n",
    b"a FETCH 01 FLAGS\r\n",
    b"a FETCH 4294967296 FLAGS\r\n",
    b"a FETCH 1: FLAGS\r\n",
    b"a FETCH 1,,2 FLAGS\r\n",
    b"a FETCH 1 ()\r\n",
    b"a FETCH 1 FOO\r\n",
    b"a FETCH 1 (FLAGS ALL)\r\n",
    b"a FETCH 1 BODY.PEEK\r\n",
    b"a FETCH 1 BODY[MIME]\r\n",
    b"a FETCH 1 BODY[0]\r\n",
    b"a FETCH 1 BODY[1.FOO]\r\n",
    b"a FETCH 1 BODY[HEADER.FIELDS]\r\n",
    b"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n",
    b"a FETCH 1 BODY[]<0>\r\n",
    b"a FETCH 1 BODY[]<0.0>\r\n",
    b"a FETCH 1 BINARY[TEXT]\r\n",
    b"a FETCH 1 BINARY.SIZE[1]<0.1>\r\n",
    b"a FETCH 1 FLAGS (VANISHED)\r\n",
    b"a UID FETCH 1 FLAGS (VANISHED)\r\n",
    b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)\r\n",
    b"a FETCH 1 FLAGS (CHANGEDSINCE 0)\r\n",
    b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n",
    b"a FETCH 1 FLAGS (FOO)\r\n",
    b"a FETCH 99999999999999999999999999999999 FLAGS\r\n",
    # STORE
    b"a STORE 1 FLAGS\r\n",
    b"a STORE 1 XFLAGS (\\Seen)\r\n",
    b"a STORE 1 +FLAGS.LOUD (\\Seen)\r\n",
    b"a STORE 1 (UNCHANGEDSINCE) FLAGS ()\r\n",
    b"a STORE 1 (FOO 1) FLAGS ()\r\n",
    b"a STORE 1 FLAGS (\\)\r\n",
    b"a STORE 1 FLAGS (\\Seen\r\n",
    # COPY / MOVE / EXPUNGE
    b"a COPY 1\r\n",
    b"a MOVE x y\r\n",
    b"a UID EXPUNGE\r\n",
    b"a EXPUNGE 1\r\n",
    # SEARCH
    b"a SEARCH\r\n",
    b"a SEARCH FOO\r\n",
    b"a SEARCH FROM\r\n",
    b"a SEARCH ()\r\n",
    b"a SEARCH (ALL\r\n",
    b"a SEARCH OR ALL\r\n",
    b"a SEARCH NOT\r\n",
    b"a SEARCH BEFORE 32-Jan-2000\r\n",
    b"a SEARCH BEFORE 1-Jan-99\r\n",
    b'a SEARCH BEFORE "1-Jan-1999\r\n',
    b"a SEARCH LARGER x\r\n",
    b"a SEARCH KEYWORD \\Seen\r\n",
    b"a SEARCH UID\r\n",
    b"a SEARCH RETURN (FOO) ALL\r\n",
    b"a SEARCH RETURN ALL\r\n",
    b"a SEARCH CHARSET ALL\r\n",
    b"a SEARCH MODSEQ\r\n",
    b'a SEARCH MODSEQ "/flags/x" bogus 1\r\n',
    b"a SEARCH " + b"NOT " * 100 + b"ALL\r\n",  # nesting cap
    b"a SEARCH " + b"(" * 100 + b"ALL" + b")" * 100 + b"\r\n",
    # ID / ENABLE / COMPRESS
    b"a ID\r\n",
    b'a ID ("a")\r\n',
    b"a ID (a b)\r\n",
    b'a ID ("' + b"x" * 31 + b'" NIL)\r\n',
    b"a ID (" + b'"k" NIL ' * 30 + b'"k" NIL)\r\n',
    b"a ENABLE\r\n",
    b"a COMPRESS\r\n",
]


@pytest.mark.parametrize("data", INVALID, ids=[d[:40].decode("latin-1") for d in INVALID])
def test_invalid(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_command(data)
    assert info.value.text  # something a person can read in the BAD reply


def _parse_or_protocol_error(data: bytes) -> None:
    """The rules themselves, without parse_command's defensive net, so a bug that
    raised anything but ProtocolError would show here."""
    with contextlib.suppress(ProtocolError):
        COMMANDS.parser.parse_body(Reader(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data: bytes) -> None:
    _parse_or_protocol_error(data)


VALID_SAMPLES = [
    b"a UID FETCH 1:*,3 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (from to)]<0.100>) "
    b"(CHANGEDSINCE 5 VANISHED)\r\n",
    b"a SEARCH RETURN (MIN) CHARSET UTF-8 OR FROM x (SEEN 1:5) NOT UID $ SINCE 1-Feb-1994 "
    b'MODSEQ "/flags/\\\\seen" all 5\r\n',
    b"a SELECT inbox (CONDSTORE QRESYNC (1 2 1:5 (1:3 4:6)))\r\n",
    b'a LIST (SUBSCRIBED) "" ("%" INBOX/*) RETURN (CHILDREN STATUS (MESSAGES UIDNEXT))\r\n',
    b'a APPEND foo (\\seen) " 1-Feb-1994 21:52:25 -0800" {3}\r\nabc\r\n',
    b"a STORE 1 (UNCHANGEDSINCE 5) +FLAGS.SILENT \\Deleted foo\r\n",
    b'a ID ("name" "x" "v" NIL)\r\n',
    b"a AUTHENTICATE plain AGZvbwBiYXI=\r\n",
    b"a LOGIN {3+}\r\nfoo &-\r\n",
]


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(VALID_SAMPLES),
    pos=st.integers(min_value=0, max_value=200),
    junk=st.binary(min_size=0, max_size=4),
    cut=st.integers(min_value=0, max_value=3),
)
def test_mutated_commands_never_crash(sample: bytes, pos: int, junk: bytes, cut: int) -> None:
    """Valid commands with bytes replaced at a random place reach deep into the rules."""
    pos = min(pos, len(sample))
    _parse_or_protocol_error(sample[:pos] + junk + sample[pos + cut :])


@pytest.mark.parametrize(
    "data", [b"a SELECT &Jjo\r\n", b"a SELECT &AGE\r\n", b"a CREATE bad&name\r\n"]
)
def test_bad_modified_utf7_is_a_name_no_mailbox_has(data: bytes) -> None:
    """Issue 14 item 9: an astring that is not valid modified UTF-7 (unterminated
    or bad BASE64) parses, as an InvalidName: the command is answered NO, not BAD."""
    from pushmail.imap.mutf7 import InvalidName

    cmd = parse_command(data)
    assert isinstance(cmd.mailbox, InvalidName)  # type: ignore[attr-defined]
