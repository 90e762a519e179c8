"""pushmail: a push-email server."""

__version__ = "0.1.0"
