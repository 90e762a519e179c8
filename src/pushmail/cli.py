"""The ``pushmail`` command: run the server, manage users, deliver from an MTA.

Exit codes follow sysexits.h where a caller acts on them: ``pushmail deliver`` is
run by an MTA as a mailbox command, and the MTA bounces on 67 (no such user) but
retries on 75 (temporary failure). Secrets are never printed, except the one
password ``demo-user`` makes up, which the operator asked for.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import secrets
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from pushmail import __version__, cli_quota
from pushmail.auth.names import qualify
from pushmail.auth.passwords import hash_password
from pushmail.config import LOG_LEVELS, Config, ConfigError, load_config
from pushmail.datadir import DataDirError, create_data_dir, require_store
from pushmail.store.factory import StoreUrlError, open_store, sqlite_path
from pushmail.store.interfaces import AlreadyExists, NotFound, Store, StoreUnavailable

__all__ = ["main"]

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_CONFIG = 78

DEMO_ADDRESS = "demo@localhost"
# Shortest password `user add`/`passwd` accept: a guessable one is an open mailbox
# (imported hashes are kept as they are; their passwords are not known).
MIN_PASSWORD = 8
# `serve --NAME HOST:PORT` flags, each the config key of the same name.
_LISTENERS = ("imap", "imaps", "smtp", "submission", "lmtp", "socketmap", "metrics")


class CliError(Exception):
    """A failure to report in one line, with the exit code to use."""

    def __init__(self, message: str, code: int = EX_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (``python -m pushmail`` exits with it)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage; sysexits says 64
        return EX_OK if e.code in (0, None) else EX_USAGE
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except CliError as e:
        print(f"pushmail: {e}", file=sys.stderr)
        return e.code
    except ConfigError as e:
        print(f"pushmail: {e}", file=sys.stderr)
        return EX_CONFIG


# -- argument parsing -------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    common.add_argument("--data-dir", type=Path, metavar="DIR", help="where mail is kept")
    common.add_argument("--store", metavar="URL", help="sqlite:///PATH or postgresql://HOST/DB")
    common.add_argument("--bus", metavar="URL", help="unix:///DIR or nats://HOST:PORT")
    parser = argparse.ArgumentParser(
        prog="pushmail", description="A push-email server: SMTP/LMTP in, IMAP + IDLE out."
    )
    parser.add_argument("--version", action="version", version=f"pushmail {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the server")
    for name in _LISTENERS:
        serve.add_argument(
            f"--{name}", metavar="HOST:PORT", help=f"{name} listener, or 'off' to disable it"
        )
    serve.add_argument("--log-level", choices=LOG_LEVELS, type=str.upper)
    serve.add_argument(
        "--http", metavar="HOST:PORT", help="alerts API and settings page listener, or 'off'"
    )
    serve.add_argument(
        "--workers", type=int, metavar="N", help="serving processes (0 = one per CPU)"
    )
    serve.set_defaults(func=_cmd_serve)
    status = sub.add_parser("status", parents=[common], help="what the running server is doing")
    status.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    status.set_defaults(func=_cmd_status)

    user = sub.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    add = user.add_parser("add", parents=[common], help="create a user")
    add.add_argument("address")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=_cmd_user_add)
    delete = user.add_parser("del", parents=[common], help="delete a user and all their mail")
    delete.add_argument("address")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask (for scripts)")
    delete.set_defaults(func=_cmd_user_del)
    passwd = user.add_parser("passwd", parents=[common], help="set a user's password")
    passwd.add_argument("address")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=_cmd_user_passwd)
    quota = user.add_parser("quota", parents=[common], help="show or set a user's quota")
    cli_quota.add_arguments(quota)
    quota.set_defaults(func=_cmd_user_quota)
    listing = user.add_parser("list", parents=[common], help="list users")
    listing.set_defaults(func=_cmd_user_list)
    imp = user.add_parser(
        "import", parents=[common], help="create users from a Dovecot passwd-file"
    )
    imp.add_argument("file", type=Path, help="passwd-file, or - for stdin")
    imp.add_argument("--update", action="store_true", help="replace existing users' passwords")
    imp.add_argument(
        "--domain", help="domain for lines whose user name has no @ (default: default_domain)"
    )
    imp.set_defaults(func=_cmd_user_import)

    deliver = sub.add_parser(
        "deliver", parents=[common], help="deliver a message from stdin (MTA mailbox command)"
    )
    deliver.add_argument("address", nargs="+")
    deliver.add_argument("-f", "--sender", help="envelope sender, recorded as Return-Path")
    deliver.set_defaults(func=_cmd_deliver)

    backup = sub.add_parser(
        "backup", parents=[common], help="copy the data directory while the server runs"
    )
    backup.add_argument("dest", type=Path, help="a new (or empty) directory for the copy")
    backup.set_defaults(func=_cmd_backup)
    restore = sub.add_parser(
        "restore", parents=[common], help="put a backup into a new (or empty) data directory"
    )
    restore.add_argument("source", type=Path, help="a directory made by pushmail backup")
    restore.set_defaults(func=_cmd_restore)

    from pushmail.push.cli import add_parser as add_alerts_parser  # pushmail alerts …

    add_alerts_parser(sub, common)
    from pushmail.migrate import add_parser as add_migrate_parser  # pushmail migrate --to

    add_migrate_parser(sub, common)
    demo = sub.add_parser("demo-user", parents=[common], help=f"create {DEMO_ADDRESS}")
    demo.set_defaults(func=_cmd_demo_user)

    from pushmail.client.cli import add_watch_parser  # the push client (docs/watch.md)

    add_watch_parser(sub)
    return parser


def _config(args: argparse.Namespace, **extra: object) -> Config:
    overrides: dict[str, object] = {
        "data_dir": args.data_dir,
        "store": getattr(args, "store", None),
        "bus": getattr(args, "bus", None),
        **extra,
    }
    return load_config(args.config, overrides)


# -- serve ------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    listeners = {n: getattr(args, n) for n in _LISTENERS}
    listeners["push.http"] = args.http
    config = _config(args, log_level=args.log_level, workers=args.workers, **listeners)
    _prepare_data_dir(config)
    _setup_logging(config.log_level)
    from pushmail.metrics import prepare as prepare_metrics

    prepare_metrics(config.data_dir)  # before anything imports prometheus-client
    from pushmail.supervisor.workers import run_server  # the whole server stack, only when serving

    try:
        run_server(config)
    except KeyboardInterrupt:  # a second ^C while shutting down
        return EX_OK
    except OSError as e:  # e.g. a port in use
        raise CliError(f"cannot start: {e}", EX_CANTCREAT) from e
    return EX_OK


def _cmd_status(args: argparse.Namespace) -> int:
    """Ask the running server (its status socket, pushmail.metrics.status)."""
    import json

    from pushmail.metrics.status import StatusUnavailable, format_status, read_status

    config = _config(args)
    try:
        status = read_status(config.data_dir)
    except StatusUnavailable as e:
        raise CliError(str(e), EX_UNAVAILABLE) from None
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(*format_status(status), sep="\n")
    return EX_OK


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if level != "DEBUG":  # aiosmtpd logs every command at INFO
        logging.getLogger("mail.log").setLevel(logging.WARNING)


def _prepare_data_dir(config: Config) -> None:
    try:
        create_data_dir(config.data_dir)
    except DataDirError as e:
        raise CliError(str(e), e.code) from e


def _open_store(config: Config, create: bool = False) -> Store:
    """The store in ``config.data_dir``; only commands that start something
    ``create`` one (see pushmail.datadir)."""
    path = sqlite_path(config.store_url)
    try:
        if create:
            create_data_dir(config.data_dir)
        elif path is not None:
            require_store(config.data_dir, path)
    except DataDirError as e:
        raise CliError(str(e), e.code) from e
    try:
        return open_store(config.store_url)
    except (sqlite3.Error, OSError, StoreUnavailable, StoreUrlError) as e:
        raise CliError(f"cannot open the store {config.store_url}: {e}", EX_IOERR) from e


def _with_store(
    args: argparse.Namespace, fn: Callable[[Store], int], create_store: bool = False
) -> int:
    config = _config(args)
    store = _open_store(config, create_store)
    try:
        return fn(store)
    except (sqlite3.Error, StoreUnavailable) as e:  # e.g. a read-only or damaged file
        raise CliError(f"store error in {config.store_url}: {e}", EX_IOERR) from e
    finally:
        store.close()


# -- users ------------------------------------------------------------------------------


def _address(raw: str, args: argparse.Namespace | None = None) -> str:
    """A user's address; a bare name gets ``@default_domain`` when that is set."""
    default_domain = _config(args).default_domain if args is not None else None
    address = qualify(raw, default_domain)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in '<>"\\' for c in address):
        raise CliError(f"not a valid address: {raw!r}", EX_USAGE)
    return address


def _read_password(from_stdin: bool, stdin: TextIO | None = None) -> str:
    """The first line of stdin (for scripts), or asked twice on the terminal."""
    if from_stdin:
        line = (stdin or sys.stdin).readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    else:
        try:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Password again: ") != password:
                raise CliError("the passwords differ; nothing changed")
        except EOFError:  # no terminal, and stdin ran dry
            raise CliError(
                "no password given: run on a terminal or use --password-stdin", EX_USAGE
            ) from None
    if not password:
        raise CliError("empty password refused", EX_USAGE)
    if len(password) < MIN_PASSWORD:
        raise CliError(
            f"password refused: {len(password)} characters, at least {MIN_PASSWORD} needed",
            EX_USAGE,
        )
    return password


def _cmd_user_add(args: argparse.Namespace) -> int:
    address = _address(args.address, args)
    hashed = hash_password(_read_password(args.password_stdin))

    def add(store: Store) -> int:
        try:
            store.create_user(address, hashed)
        except AlreadyExists:
            raise CliError(f"user {address} already exists", EX_CANTCREAT) from None
        print(f"created {address}")
        return EX_OK

    return _with_store(args, add, create_store=True)


def _cmd_user_del(args: argparse.Namespace) -> int:
    address = _address(args.address, args)

    def delete(store: Store) -> int:
        if store.get_user(address) is None:
            raise CliError(f"no such user: {address}", EX_NOUSER)
        if not args.yes:
            _confirm(f"Delete {address} and all their mail? [y/N] ")
        try:
            store.delete_user(address)
        except NotFound:
            raise CliError(f"no such user: {address}", EX_NOUSER) from None
        print(f"deleted {address} and all their mail")
        return EX_OK

    return _with_store(args, delete)


def _confirm(question: str) -> None:
    """Ask on the terminal; without one, refuse: a script says --yes."""
    if not sys.stdin.isatty():
        raise CliError(
            "not deleting without confirmation: add --yes (no terminal to ask)", EX_USAGE
        )
    try:
        answer = input(question)
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("nothing deleted", EX_FAILURE)


def _cmd_user_passwd(args: argparse.Namespace) -> int:
    address = _address(args.address, args)

    def check(store: Store) -> int:
        if store.get_user(address) is None:
            raise CliError(f"no such user: {address}", EX_NOUSER)
        return EX_OK

    _with_store(args, check)  # before asking for a password that would be wasted
    hashed = hash_password(_read_password(args.password_stdin))

    def change(store: Store) -> int:
        try:
            store.set_password(address, hashed)
        except NotFound:
            raise CliError(f"no such user: {address}", EX_NOUSER) from None
        print(f"password changed for {address}")
        return EX_OK

    return _with_store(args, change)


def _cmd_user_quota(args: argparse.Namespace) -> int:
    address = _address(args.address, args)

    def quota(store: Store) -> int:
        user = store.get_user(address)
        if user is None:
            raise CliError(f"no such user: {address}", EX_NOUSER)
        try:
            wanted = cli_quota.wanted_quota(args, store.get_quota(user.id)[0])
        except ValueError as e:
            raise CliError(str(e), EX_USAGE) from None
        if wanted is not None:
            store.set_quota(user.id, wanted)
        print(cli_quota.describe(address, *store.get_quota(user.id)))
        return EX_OK

    return _with_store(args, quota)


def _cmd_user_list(args: argparse.Namespace) -> int:
    def listing(store: Store) -> int:
        for user in sorted(store.list_users(), key=lambda u: u.address):
            print(user.address)
        return EX_OK

    return _with_store(args, listing)


def _cmd_user_import(args: argparse.Namespace) -> int:
    """All good lines in one transaction; every bad line reported with its number.
    Exit 65 (EX_DATAERR) if any line was bad, even though the good ones were imported,
    so a script notices."""
    from pushmail.auth.passwd_file import parse_passwd_file

    domain = args.domain or _config(args).default_domain
    try:
        if str(args.file) == "-":
            entries, bad = parse_passwd_file(sys.stdin, domain)
        else:
            with args.file.open(encoding="utf-8") as f:
                entries, bad = parse_passwd_file(f, domain)
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read {args.file}: {e}", EX_USAGE) from e
    for line in bad:
        print(f"pushmail: {args.file}: {line}", file=sys.stderr)

    def load(store: Store) -> int:
        existing = {u.address for u in store.list_users()}
        pairs = [(e.address, e.password_hash) for e in entries]
        created = store.create_users(pairs, update=args.update)
        present = sum(1 for e in entries if e.address in existing)
        verb = "updated" if args.update else "skipped (already exist)"
        print(f"created {created} users, {verb} {present}, {len(bad)} bad lines")
        return EX_DATAERR if bad else EX_OK

    return _with_store(args, load, create_store=True)


def _cmd_demo_user(args: argparse.Namespace) -> int:
    password = secrets.token_urlsafe(12)
    config = _config(args)
    me = _program()

    def create(store: Store) -> int:
        if store.get_user(DEMO_ADDRESS) is not None:
            print(f"{DEMO_ADDRESS} already exists; its password was shown when it was made.")
            print(f"To set a new one: {me} user passwd {DEMO_ADDRESS}")
            return EX_OK
        store.create_user(DEMO_ADDRESS, hash_password(password))
        print(f"demo user: {DEMO_ADDRESS}")
        change = f"{me} user passwd {DEMO_ADDRESS}"
        print(f"password:  {password}  (shown only now; change it with: {change})")
        print()
        print(*_banner(config), sep="\n")
        return EX_OK

    return _with_store(args, create, create_store=True)


def _program() -> str:
    """How the user called us, for commands we suggest: ``.venv/bin/pushmail`` after
    ``make run``, plain ``pushmail`` under ``python -m pushmail`` or on the PATH."""
    name = sys.argv[0] if sys.argv else ""
    return name if Path(name).name == "pushmail" and "/" in name else "pushmail"


def _banner(config: Config) -> list[str]:
    """Where to connect, from the configuration: every listener that is on."""
    lines = ["Connect a mail client with that address as the user name:"]
    rows = [
        ("IMAP", config.imap, "STARTTLS; plaintext login from loopback only"),
        ("IMAPS", config.imaps, "implicit TLS"),
        ("SMTP", config.smtp, "incoming mail for local users, no login"),
        ("submission", config.submission, "sending: STARTTLS + AUTH"),
        ("LMTP", config.lmtp, "for an MTA in front, such as Postfix"),
    ]
    for name, ep, note in rows:
        if ep is not None:
            lines.append(f"  {name:<11} {ep}  ({note})")
    http = config.push.http
    if http is not None:
        scheme = "https" if config.push.http_tls else "http"
        host = f"[{http.host}]" if ":" in http.host else http.host
        lines.append(f"  {'settings':<11} {scheme}://{host}:{http.port}/  (new-mail alerts)")
    if config.tls_cert is None or config.tls_key is None:
        lines.append("The certificate is self-signed: accept it in the client once.")
    return lines


# -- backup and restore -------------------------------------------------------------------


def _store_in_data_dir(config: Config) -> None:
    """``backup`` and ``restore`` copy a data directory holding its SQLite store."""
    if sqlite_path(config.store_url) != config.db_path.absolute():
        raise CliError(
            f"the store {config.store_url} is not the data directory's SQLite file: "
            "back up a PostgreSQL store with pg_dump",
            EX_USAGE,
        )


def _cmd_backup(args: argparse.Namespace) -> int:
    from pushmail.backup import BackupError, make_backup

    config = _config(args)
    _store_in_data_dir(config)
    try:
        report = make_backup(config.data_dir, args.dest)
    except BackupError as e:
        raise CliError(str(e), EX_CANTCREAT) from e
    print(f"backed up {report.files} files ({report.bytes} bytes) to {args.dest}")
    return EX_OK


def _cmd_restore(args: argparse.Namespace) -> int:
    from pushmail.backup import BackupError, restore_backup

    config = _config(args)
    _store_in_data_dir(config)
    try:
        report = restore_backup(args.source, config.data_dir)
    except BackupError as e:
        raise CliError(str(e), EX_CANTCREAT) from e
    print(f"restored {report.files} files ({report.bytes} bytes) into {config.data_dir}")
    return EX_OK


# -- deliver ----------------------------------------------------------------------------


def _cmd_deliver(args: argparse.Namespace) -> int:
    """Read one message from stdin and store it durably for each address."""
    from pushmail.delivery import Deliverer, normalize_crlf
    from pushmail.events.factory import open_publisher

    config = _config(args)
    raw = normalize_crlf(sys.stdin.buffer.read())
    if args.sender is not None:
        raw = b"Return-Path: <" + _header_safe(args.sender) + b">\r\n" + raw
    if not raw.strip():
        raise CliError("empty message on stdin", EX_DATAERR)
    try:
        store = _open_store(config)
    except CliError as e:
        raise CliError(str(e), EX_TEMPFAIL) from e
    except Exception as e:  # sqlite3.Error, OSError...: the MTA retries, never bounces
        raise CliError(f"store unavailable: {e}", EX_TEMPFAIL) from e
    publisher = open_publisher(config.bus_url)
    try:
        deliverer = Deliverer(store, publisher, max_size=config.limits.max_message)
        results = deliverer.deliver(args.address, raw)
    except Exception as e:
        raise CliError(f"delivery failed: {e}", EX_TEMPFAIL) from e
    finally:
        publisher.flush(timeout=0.5)  # a busy server's queue may need a moment
        publisher.close()
        store.close()
    for result in results:
        if result.code >= 300:
            print(f"pushmail: {result.reply()}", file=sys.stderr)
    return _deliver_status([r.code for r in results], [r.enhanced for r in results])


def _deliver_status(codes: list[int], enhanced: list[str]) -> int:
    """One exit status for all recipients: temporary trumps permanent, so the MTA
    retries rather than bounces while any copy might still be stored."""
    if any(400 <= c < 500 for c in codes):
        return EX_TEMPFAIL
    if any(e == "5.1.1" for e in enhanced):
        return EX_NOUSER
    if any(c >= 500 for c in codes):
        return EX_DATAERR
    return EX_OK


def _header_safe(value: str) -> bytes:
    return "".join(c if "!" <= c <= "~" else "?" for c in value).encode("ascii")
