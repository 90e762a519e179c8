"""Makes the end-to-end server harness (tests/e2e/e2e_server.py) importable here."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "e2e"))
