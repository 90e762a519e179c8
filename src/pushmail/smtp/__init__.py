"""pushmail.smtp."""
