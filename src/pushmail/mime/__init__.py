"""pushmail.mime."""
