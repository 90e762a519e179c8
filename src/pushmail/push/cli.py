"""``pushmail alerts …``: the operator's view of devices, rules and the alert queue.

It does from the shell what the HTTP API does for a user, on the same push database
(``<data_dir>/push.sqlite3``), so it works whether or not the server runs: a running
server picks up changes (and queued test alerts) within its poll interval.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any

from pushmail import seclog
from pushmail.config import Config, load_config
from pushmail.datadir import DataDirError, require_store
from pushmail.push.alert import test_alert
from pushmail.push.db import DB_FILE, KINDS, MAX_SECRET, MIN_SECRET, PushDB, new_secret
from pushmail.push.db import Device as PushDevice
from pushmail.push.db_open import open_push_db, push_db_url
from pushmail.push.destinations import RefusedEndpoint, check_endpoint, endpoint_policy
from pushmail.push.rules import Rules
from pushmail.store.factory import sqlite_path

EX_OK, EX_FAILURE, EX_USAGE, EX_NOUSER, EX_IOERR = 0, 1, 64, 67, 74


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``alerts`` command group to the main parser's subparsers."""
    alerts = sub.add_parser("alerts", help="push alerts: devices, rules, queue").add_subparsers(
        dest="alerts_command", required=True, metavar="ACTION"
    )
    p = alerts.add_parser("list", parents=[common], help="list devices (of one user or all)")
    p.add_argument("address", nargs="?")
    p.set_defaults(func=_run(_list))
    p = alerts.add_parser("add", parents=[common], help="add a device for a user")
    p.add_argument("address")
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--endpoint", required=True, help="push, webhook or ntfy topic URL")
    p.add_argument("--p256dh", default="", help="webpush: the subscription's public key")
    p.add_argument("--auth", default="", help="webpush: the subscription's auth secret")
    secret_help = "webhook HMAC key (made and printed once if not given) / ntfy token"
    p.add_argument("--secret", default="", help=secret_help)
    p.add_argument("--label", default="")
    p.set_defaults(func=_run(_add))
    p = alerts.add_parser("remove", parents=[common], help="remove a device")
    p.add_argument("device_id", type=int)
    p.set_defaults(func=_run(_remove))
    p = alerts.add_parser("rules", parents=[common], help="show or set a user's rules")
    p.add_argument("address")
    p.add_argument("--device", type=int, help="the rules of one device instead")
    p.add_argument("--set", metavar="JSON", help='e.g. \'{"only_from": ["boss@example.com"]}\'')
    p.add_argument("--clear", action="store_true", help="drop the rules (back to defaults)")
    p.set_defaults(func=_run(_rules))
    p = alerts.add_parser("test", parents=[common], help="queue a test alert for a device")
    p.add_argument("device_id", type=int)
    p.set_defaults(func=_run(_test))
    p = alerts.add_parser("queue", parents=[common], help="how many alerts wait")
    p.set_defaults(func=_run(_queue))


Command = Callable[[argparse.Namespace, Config, PushDB], int]


class _Refused(Exception):
    def __init__(self, message: str, code: int = EX_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = load_config(args.config, {"data_dir": args.data_dir})
        try:
            path = sqlite_path(config.store_url)
            if path is not None:
                require_store(config.data_dir, path)  # never make one by mistake
            db = open_push_db(push_db_url(config.store_url, config.data_dir))
        except DataDirError as e:
            print(f"pushmail: {e}", file=sys.stderr)
            return e.code
        except (sqlite3.Error, OSError) as e:
            print(f"pushmail: cannot open {config.data_dir / DB_FILE}: {e}", file=sys.stderr)
            return EX_IOERR
        try:
            return command(args, config, db)
        except _Refused as e:
            print(f"pushmail: {e}", file=sys.stderr)
            return e.code
        except sqlite3.Error as e:  # the mail store (users) or the push database
            print(f"pushmail: store error in {config.data_dir}: {e}", file=sys.stderr)
            return EX_IOERR
        finally:
            db.close()

    return run


def _user_id(config: Config, address: str) -> int:
    from pushmail.store.factory import open_store

    store = open_store(config.store_url)
    try:
        user = store.get_user(address.strip().lower())
    finally:
        store.close()
    if user is None:
        raise _Refused(f"no such user: {address}", EX_NOUSER)
    return user.id


def _list(args: argparse.Namespace, config: Config, db: PushDB) -> int:
    user_id = _user_id(config, args.address) if args.address else None
    for d in db.devices(user_id):
        origin = d.public()["endpoint_origin"]
        print(f"{d.id}\tuser {d.user_id}\t{d.kind}\t{origin}\t{d.label}\tqueued {db.queued(d.id)}")
    return EX_OK


def _add(args: argparse.Namespace, config: Config, db: PushDB) -> int:
    if args.kind == "webpush" and not (args.p256dh and args.auth):
        raise _Refused("webpush needs --p256dh and --auth", EX_USAGE)
    if args.secret and not MIN_SECRET <= len(args.secret) <= MAX_SECRET:
        raise _Refused(f"--secret must have {MIN_SECRET} to {MAX_SECRET} characters", EX_USAGE)
    try:  # the same rule as the HTTP API's
        check_endpoint(args.endpoint, endpoint_policy(config.push))
    except RefusedEndpoint as e:
        seclog.report("endpoint-refused", "cli", "local", args.address, reason=str(e))
        raise _Refused(str(e), EX_USAGE) from None
    user_id = _user_id(config, args.address)
    made = new_secret() if args.kind == "webhook" and not args.secret else ""
    device = PushDevice(0, user_id, args.kind, args.endpoint, args.p256dh, args.auth,
                        args.secret or made, args.label, time.time())  # fmt: skip
    added = db.add_device(device).id
    print(f"device {added} added for {args.address} ({args.kind})")
    print(f"try it: pushmail alerts test {added}")
    if made:  # as the API does: shown once, for the webhook receiver
        print(f"secret: {made}")
    return EX_OK


def _remove(args: argparse.Namespace, config: Config, db: PushDB) -> int:
    if not db.remove_device(args.device_id):
        raise _Refused(f"no device {args.device_id}")
    return EX_OK


def _rules(args: argparse.Namespace, config: Config, db: PushDB) -> int:
    user_id = _user_id(config, args.address)
    device_id = args.device or 0
    if device_id and (d := db.device(device_id)) is not None and d.user_id != user_id:
        raise _Refused(f"device {device_id} is not {args.address}'s")
    if args.clear:
        db.set_rules(user_id, None, device_id)
    elif args.set is not None:
        try:
            db.set_rules(user_id, Rules.from_json(json.loads(args.set)), device_id)
        except ValueError as e:
            raise _Refused(f"bad rules: {e}", EX_USAGE) from None
    rules = db.rules(user_id, device_id)
    if rules is None:  # "null" told a user nothing
        if device_id:
            print(f"device {device_id} has no rules of its own: {args.address}'s rules apply")
        else:
            print(f"no rules set for {args.address}: the defaults apply (an alert for new mail")
            print("in INBOX from anyone, at any time); set some with --set JSON")
    else:
        print(json.dumps(rules.to_json(), indent=2))
    return EX_OK


def _test(args: argparse.Namespace, config: Config, db: PushDB) -> int:
    device = db.device(args.device_id)
    if device is None:
        raise _Refused(f"no device {args.device_id}")
    alert, topic = test_alert(db.secret(), device.user_id)
    db.enqueue(device.id, topic, alert, time.time(), 0.0, config.push.lifetime, rate_limited=False)
    print(f"test alert queued for device {device.id}; a running server sends it within 5 s")
    return EX_OK


def _queue(args: argparse.Namespace, config: Config, db: PushDB) -> int:
    print(db.queued())
    return EX_OK
