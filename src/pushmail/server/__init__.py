"""pushmail.server: the wiring. The only package that knows every part: it opens the
store and the bus from their URLs, builds the listeners (IMAP, SMTP/LMTP, push HTTP,
metrics), the store thread and the IDLE hub, and hands each to the layers below, which
stay unaware of one another."""
