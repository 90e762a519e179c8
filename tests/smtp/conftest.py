"""Fixtures for the SMTP tests; the machinery is in ``smtp_harness``."""

from smtp_harness import smtpd, smtpd_factory

__all__ = ["smtpd", "smtpd_factory"]
