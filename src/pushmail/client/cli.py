"""``pushmail watch`` and its actions: run, mute, unmute, fetch.

``pushmail watch --config watch.toml`` runs the watcher in the foreground (a service
manager supervises it; JSON lines go to stdout or ``log``); without ``--config`` it reads
``$XDG_CONFIG_HOME/pushmail/watch.toml``. The other actions talk to a running watcher
only through the state directory, so they work whether or not it runs: ``mute`` writes
the mute file the watcher reads for every message, ``fetch`` downloads the rest of a
partially downloaded message into the same Maildir file. ``fingerprint HOST [PORT]``
needs no config: it prints the certificate a server presents, to pin it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from pushmail.client.connection import (
    ClientError,
    Counters,
    Endpoint,
    format_fingerprint,
    server_certificate,
)
from pushmail.client.daemon import WatchDaemon, state_path
from pushmail.client.mailbox import examine, fetch_whole, maildir_for
from pushmail.client.response import ResponseError
from pushmail.client.rules import parse_duration, parse_when, write_mute
from pushmail.client.settings import (
    WatchConfig,
    WatchConfigError,
    default_config_path,
    load_watch_config,
)
from pushmail.client.state import WatchState
from pushmail.client.watcher import open_account

__all__ = ["add_watch_parser"]

EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_CONFIG = 78


def add_watch_parser(sub: Any) -> None:
    """Register ``watch`` on the top-level subparsers (called from ``pushmail.cli``)."""
    watch = sub.add_parser("watch", help="push client: watch IMAP accounts and run hooks")
    watch.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="watch.toml (default: $XDG_CONFIG_HOME/pushmail/watch.toml, "
        "XDG_CONFIG_HOME defaulting to ~/.config)",
    )
    watch.add_argument(
        "--starttls", action="store_true", help="fingerprint: STARTTLS instead of implicit TLS"
    )
    watch.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=("run", "mute", "unmute", "fetch", "fingerprint"),
    )
    watch.add_argument(
        "args",
        nargs="*",
        help="mute: DURATION or ISO time; fetch: ACCOUNT FOLDER UID; fingerprint: HOST [PORT]",
    )
    watch.set_defaults(func=cmd_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    action = args.action
    if action == "fingerprint":
        return _fingerprint(args.args, args.starttls)
    path = args.config if args.config is not None else default_config_path()
    try:
        config = load_watch_config(path)
    except WatchConfigError as e:
        print(f"pushmail: {e}", file=sys.stderr)
        return EX_CONFIG
    if action == "run":
        if args.args:
            return _usage("watch run takes no arguments")
        return asyncio.run(WatchDaemon(path, config).run())
    if action == "mute":
        return _mute(config, args.args)
    if action == "unmute":
        write_mute(config.state_dir, None)
        print("unmuted")
        return 0
    return _fetch(config, args.args)


def _usage(text: str) -> int:
    print(f"pushmail: {text}", file=sys.stderr)
    return EX_USAGE


def _mute(config: WatchConfig, words: list[str]) -> int:
    if len(words) != 1:
        return _usage("usage: pushmail watch mute DURATION|ISO-TIME (e.g. 2h, 2025-06-01T08:00)")
    now = dt.datetime.now().astimezone()
    try:
        until = now + parse_duration(words[0])
    except ValueError:
        try:
            until = parse_when(words[0])
        except ValueError as e:
            return _usage(str(e))
    write_mute(config.state_dir, until)
    print(f"muted until {until.isoformat(timespec='seconds')}")
    return 0


def _fingerprint(words: list[str], starttls: bool) -> int:
    """Print the SHA-256 fingerprint of the certificate HOST:PORT presents, as
    ``tls_fingerprint`` takes it. Unverified by nature: compare it with the one the
    server's operator sees (``openssl x509 -noout -fingerprint -sha256 -in CERT``)."""
    if not 1 <= len(words) <= 2 or (len(words) == 2 and not words[1].isdigit()):
        return _usage("usage: pushmail watch [--starttls] fingerprint HOST [PORT]")
    port = int(words[1]) if len(words) == 2 else (143 if starttls else 993)
    ep = Endpoint(words[0], port, "starttls" if starttls else "tls", verify=False)
    try:
        der = asyncio.run(server_certificate(ep, 30.0))
    except (ClientError, ResponseError, OSError) as e:
        print(f"pushmail: {e}", file=sys.stderr)
        return EX_UNAVAILABLE
    print(f'tls_fingerprint = "{format_fingerprint(der)}"')
    return 0


def _fetch(config: WatchConfig, words: list[str]) -> int:
    if len(words) != 3 or not words[2].isdigit():
        return _usage("usage: pushmail watch fetch ACCOUNT FOLDER UID")
    name, folder, uid = words[0], words[1], int(words[2])
    account = next((a for a in config.accounts if a.name == name), None)
    if account is None:
        return _usage(f"no account named {name!r}")
    try:
        path = asyncio.run(_fetch_rest(config, account.name, folder, uid))
    except (ClientError, ResponseError, OSError) as e:
        print(f"pushmail: fetch failed: {e}", file=sys.stderr)
        return EX_UNAVAILABLE
    if path is None:
        print(f"pushmail: no message {name}/{folder}/{uid} on the server", file=sys.stderr)
        return EX_DATAERR
    print(path)
    return 0


async def _fetch_rest(config: WatchConfig, name: str, folder: str, uid: int) -> str | None:
    """Download the whole message into its Maildir file (replacing a partial copy)."""
    import mailbox

    account = next(a for a in config.accounts if a.name == name)
    state = WatchState(state_path(config))
    conn = await open_account(account, Counters())
    try:
        info = await examine(conn, folder)
        data = await fetch_whole(conn, uid)
        if data is None:
            return None
        key = (name, folder, info.uidvalidity, uid)
        known = state.download(key)
        md_path = maildir_for(config.download, name, folder)
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md = mailbox.Maildir(md_path, create=True)
        old_key = Path(known[0]).name if known else None
        if old_key is not None and old_key in md:
            md[old_key] = mailbox.MaildirMessage(data)
            out = known[0] if known else ""
        else:
            out = str(md_path / "new" / md.add(mailbox.MaildirMessage(data)))
        state.save_download(key, out, False)
        return out
    finally:
        await conn.logout()
        state.close()
