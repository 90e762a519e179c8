"""One node's dispatcher, alone in a process, for the cluster tests: drains the
push queue of a PostgreSQL database to loopback endpoints until it is killed.

    python cluster_node.py <database URL> <batch> <lease seconds>
"""

from __future__ import annotations

import asyncio
import sys

from pushmail.push.db import DbThread
from pushmail.push.db_open import open_push_db
from pushmail.push.destinations import guarded_session
from pushmail.push.dispatcher import DeliveryPolicy, Dispatcher
from pushmail.push.senders import Sender, WebhookSender


async def main(url: str, batch: int, lease: float) -> None:
    db = DbThread(lambda: open_push_db(url, lease=lease))
    # Loopback endpoints: the allowance the operator gives with
    # push.allow_private_endpoints, as the other push tests do.
    async with guarded_session(allow_private=True) as session:
        senders: dict[str, Sender] = {"webhook": WebhookSender(session, 60.0)}
        policy = DeliveryPolicy(hold=0.0, min_interval=0.0, batch=batch)
        print("ready", flush=True)
        await Dispatcher(db, senders, policy).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
