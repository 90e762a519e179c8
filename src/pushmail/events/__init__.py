"""pushmail.events."""
