"""``pushmail user import``: Dovecot passwd-files in, users with their folders out."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest

from pushmail.auth.passwd_file import BadLine, parse_passwd_file
from pushmail.auth.passwords import hash_password, sha_crypt, verify_password
from pushmail.cli import EX_DATAERR, EX_OK, main
from pushmail.store.interfaces import DEFAULT_MAILBOXES
from pushmail.store.sqlite import SqliteStore


def hashes() -> dict[str, str]:
    """One user per scheme, each with the password ``pw-<name>``."""
    blf = bcrypt.hashpw(b"pw-blf", bcrypt.gensalt(rounds=4)).decode()
    return {
        "plain": "{PLAIN}pw-plain",
        "sha": "{SHA512-CRYPT}" + sha_crypt(b"pw-sha", "$6$saltsalt"),
        "blf": "{BLF-CRYPT}" + blf,
        "argon": hash_password("pw-argon"),
    }


def run_import(tmp_path: Path, text: str, *flags: str) -> int:
    path = tmp_path / "passwd"
    path.write_text(text)
    return main(["user", "import", str(path), "--data-dir", str(tmp_path / "data"), *flags])


def open_store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "data" / "pushmail.sqlite3")


def test_parse_accepts_comments_blank_lines_and_extra_fields() -> None:
    text = [
        "# users of example.org",
        "",
        "alice@Example.org:{PLAIN}secret:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G",
        "   ",
        "bob:{plain}pw\r\n",
    ]
    entries, bad = parse_passwd_file(text, domain="example.org")
    assert bad == []
    assert [(e.line, e.address, e.password_hash) for e in entries] == [
        (3, "alice@example.org", "{PLAIN}secret"),
        (5, "bob@example.org", "{PLAIN}pw"),
    ]
    assert "secret" not in repr(entries[0])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("just-a-name", "expected user"),
        ("bob:{PLAIN}x", "not a valid address"),
        ("a b@example.org:{PLAIN}x", "not a valid address"),
        ("c@example.org:$6$abc$def", "no {SCHEME}"),
        ("d@example.org:{MD5}abc", "unsupported password scheme {MD5}"),
        ("e@example.org:{SHA512-CRYPT}notahash", "malformed {SHA512-CRYPT}"),
        ("f@example.org:{ARGON2ID}$argon2i$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", "malformed"),
        ("g@example.org:{PLAIN}", "malformed {PLAIN}"),
    ],
)
def test_parse_reports_bad_lines_with_numbers(line: str, reason: str) -> None:
    entries, bad = parse_passwd_file(["# header", line])
    assert entries == []
    assert len(bad) == 1 and bad[0].line == 2 and reason in bad[0].reason
    assert "{PLAIN}x" not in str(bad[0])


def test_parse_refuses_a_repeated_address() -> None:
    entries, bad = parse_passwd_file(["a@x.org:{PLAIN}1", "A@X.org:{PLAIN}2"])
    assert [e.password_hash for e in entries] == ["{PLAIN}1"]
    assert bad == [BadLine(2, "a@x.org already on line 1")]


def test_import_every_scheme_keeps_the_hash_and_logs_in(tmp_path: Path) -> None:
    users = hashes()
    text = "".join(
        f"{name}@example.org:{h}:1000:1000::/home/{name}::\n" for name, h in users.items()
    )
    code = run_import(tmp_path, text)
    assert code == EX_OK
    store = open_store(tmp_path)
    try:
        for name, stored in users.items():
            user = store.get_user(f"{name}@example.org")
            assert user is not None and user.password_hash == stored  # not re-hashed
            assert verify_password(user.password_hash, f"pw-{name}")
            assert not verify_password(user.password_hash, "wrong")
            names = {(b.name, b.special_use) for b in store.list_mailboxes(user.id)}
            assert names == set(DEFAULT_MAILBOXES)
    finally:
        store.close()


def test_bad_lines_are_reported_and_exit_nonzero_but_good_ones_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "ok1@example.org:{PLAIN}a\nbroken line\nok2@example.org:{NOPE}b\nok3@example.org:{PLAIN}c\n"
    )
    code = run_import(tmp_path, text)
    err = capsys.readouterr()
    assert code == EX_DATAERR
    assert "line 2: expected user" in err.err and "line 3: unsupported" in err.err
    assert "created 2 users" in err.out and "2 bad lines" in err.out
    store = open_store(tmp_path)
    try:
        assert [u.address for u in store.list_users()] == ["ok1@example.org", "ok3@example.org"]
    finally:
        store.close()


def test_existing_users_are_skipped_or_updated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_import(tmp_path, "a@example.org:{PLAIN}one\n") == EX_OK
    assert run_import(tmp_path, "a@example.org:{PLAIN}two\nb@example.org:{PLAIN}b\n") == EX_OK
    assert "created 1 users, skipped (already exist) 1" in capsys.readouterr().out
    store = open_store(tmp_path)
    try:
        user = store.get_user("a@example.org")
        assert user is not None and user.password_hash == "{PLAIN}one"
    finally:
        store.close()
    assert run_import(tmp_path, "a@example.org:{PLAIN}two\n", "--update") == EX_OK
    assert "created 0 users, updated 1" in capsys.readouterr().out
    store = open_store(tmp_path)
    try:
        user = store.get_user("a@example.org")
        assert user is not None and user.password_hash == "{PLAIN}two"
        assert len(store.list_mailboxes(user.id)) == len(DEFAULT_MAILBOXES)
    finally:
        store.close()


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["user", "import", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d")])
    assert code == 64 and "cannot read" in capsys.readouterr().err


def test_ten_thousand_users_in_one_go(tmp_path: Path) -> None:
    text = "".join(f"user{i}@example.org:{{PLAIN}}pw{i}\n" for i in range(10_000))
    assert run_import(tmp_path, text) == EX_OK
    store = open_store(tmp_path)
    try:
        users = store.list_users()
        assert len(users) == 10_000
        last = store.get_user("user9999@example.org")
        assert last is not None and verify_password(last.password_hash, "pw9999")
        assert store.get_mailbox(last.id, "Junk") is not None
    finally:
        store.close()
