"""pushmail.client."""
