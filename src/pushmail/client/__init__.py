"""pushmail.client: the push client library under ``pushmail watch`` (docs/watch.md).

Layers, bottom up: ``response`` (sans-IO response reader), ``connection`` (asyncio IMAP
connection, a deadline on every await), ``heartbeat`` (one coalesced timer for all
idling connections), ``mailbox`` (EXAMINE/STATUS/fetch/download), ``state`` (SQLite:
cursors and announced keys), ``rules`` and ``hooks`` (what reaches the user),
``pipeline`` (dedup → rules → download → claim → hooks), ``watcher`` (strategies,
resync, reconnect), ``daemon`` and ``cli`` (the command).
"""
