"""pushmail.net."""
