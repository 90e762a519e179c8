"""pushmail.threads: the store thread (``store_runner``), the one way the event loop
runs store calls, shared by IMAP (net/) and SMTP/LMTP delivery (smtp/)."""
