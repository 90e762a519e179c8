"""pushmail.store."""
