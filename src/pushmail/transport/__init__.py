"""pushmail.transport: bytes between a socket and a protocol, for IMAP, SMTP and HTTPS.

TLS (contexts, the memory-BIO layer and its record reader, key logging), COMPRESS
(RFC 4978), small reads, the descriptor cap and the listening-socket acceptor. Knows
no protocol: net/, smtp/ and web/ build on it, it imports none of them.
"""
