"""pushmail.auth."""
