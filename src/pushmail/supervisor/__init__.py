"""pushmail.supervisor: ``pushmail serve --workers N``, the parent process that starts,
watches and restarts the serving processes (each runs server/serve.py)."""
