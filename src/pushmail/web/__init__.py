"""pushmail.web: the HTTP API and the settings page for alerts."""
