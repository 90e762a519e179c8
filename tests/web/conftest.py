"""Shared with tests/push: the real receiving endpoint and the server harness."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "push"))
sys.path.insert(0, str(Path(__file__).parent.parent / "e2e"))
