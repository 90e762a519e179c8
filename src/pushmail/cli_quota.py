"""``pushmail user quota``: what the arguments mean and how a quota is shown.

Quotas are set by the administrator only: IMAP SETQUOTA is refused (see
``imap/cmd_quota.py``), as a user who could raise their own limit has none.
"""

from __future__ import annotations

import argparse

from pushmail.store.interfaces import Quota, QuotaUsage
from pushmail.store.quota import format_size, parse_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address")
    parser.add_argument("--storage", help="storage limit, e.g. 500K, 100M, 2G (binary units)")
    parser.add_argument("--messages", type=int, help="message count limit")
    parser.add_argument("--none", action="store_true", help="remove the user's limits")


def wanted_quota(args: argparse.Namespace, current: Quota) -> Quota | None:
    """The quota the arguments ask for; None when they only ask to see it. A limit
    not named keeps its current value. Raises ValueError on a bad argument."""
    if args.none:
        if args.storage is not None or args.messages is not None:
            raise ValueError("--none cannot be combined with --storage or --messages")
        return Quota()
    if args.storage is None and args.messages is None:
        return None
    if args.messages is not None and args.messages < 0:
        raise ValueError("--messages must be 0 or more")
    storage = current.storage if args.storage is None else parse_size(args.storage)
    messages = current.messages if args.messages is None else args.messages
    return Quota(storage, messages)


def describe(address: str, quota: Quota, usage: QuotaUsage) -> str:
    def limit(value: int | None, fmt: str) -> str:
        return "unlimited" if value is None else fmt

    storage = limit(quota.storage, format_size(quota.storage or 0))
    messages = limit(quota.messages, str(quota.messages))
    return (
        f"{address}: storage {format_size(usage.storage)} of {storage}, "
        f"messages {usage.messages} of {messages}"
    )
