"""pushmail.net: the asyncio driver of IMAP connections (``imap_conn``), hibernation of
idle sessions (``hibernate``, ``hibernated``, ``homes``), the IDLE hub and keepalives."""
