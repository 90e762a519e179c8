"""pushmail.imap."""
