"""``python -m pushmail``: the same as the ``pushmail`` command."""

from pushmail.cli import main

raise SystemExit(main())
